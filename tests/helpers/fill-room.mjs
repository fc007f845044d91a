#!/usr/bin/env node
// Fills a room with users, from a process of its own (so the test process does
// not hold thousands of sockets): node fill-room.mjs <ws-url> <room> <count> [first]
// opens `count` WebSocket connections as users u0001.. (from `first`, default 1;
// ids zero-padded to 4 digits), joins each to `room`, prints
// {"joined":count,"ms":...} once every `joined` answer is in, and then holds the
// connections until it is signalled or its stdin closes (the test went away).
// On any failure it prints {"error":...} and exits 1.
import WebSocket from 'ws';

const [url, room, countArg, firstArg = '1'] = process.argv.slice(2);
const count = Number(countArg);
const first = Number(firstArg);
if (!url || !room || !Number.isInteger(count) || count < 1 || !Number.isInteger(first)) {
  console.error('usage: fill-room.mjs <ws-url> <room> <count> [first]');
  process.exit(2);
}
/** Connections being opened and joined at once: enough to keep the gateway busy, few enough not to queue up its accepts. */
const WINDOW = 200;

const sockets = [];
const fail = (message) => {
  console.log(JSON.stringify({ error: message }));
  process.exit(1);
};

function joinOne(user) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url}?user=${encodeURIComponent(user)}`);
    sockets.push(ws);
    const onMessage = (data) => {
      const frame = JSON.parse(String(data));
      if (frame.type === 'welcome') ws.send(JSON.stringify({ type: 'join', room, ref: 'j' }));
      else if (frame.ref === 'j' && frame.type === 'joined') {
        ws.off('message', onMessage); // what the room says afterwards is read and dropped unparsed
        resolve();
      } else if (frame.ref === 'j') reject(new Error(`${user}: ${frame.code}: ${frame.message}`));
    };
    ws.on('message', onMessage);
    ws.on('error', (err) => reject(new Error(`${user}: ${err.message}`)));
    ws.on('close', (code) => reject(new Error(`${user}: closed with ${code}`)));
  });
}

const started = Date.now();
let next = 0;
async function worker() {
  while (next < count) {
    const i = first + next++;
    await joinOne(`u${String(i).padStart(4, '0')}`);
  }
}
try {
  await Promise.all(Array.from({ length: Math.min(WINDOW, count) }, worker));
} catch (err) {
  fail(err.message);
}
// From here a close is the test's business (a gateway stopped under us): keep quiet.
for (const ws of sockets) ws.removeAllListeners('close').on('close', () => {}).on('error', () => {});
console.log(JSON.stringify({ joined: count, ms: Date.now() - started }));
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
