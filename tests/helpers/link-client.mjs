// A client at the far end of a lossy link (run inside the test's network namespace):
//   node link-client.mjs <ws|sse> <http://host:port> <user> <room> <count> <silenceMs>
// Joins <room>, says {"joined":true}, then {"ids":[...]} once <count> messages came (in arrival
// order), then {"dead":ms} when the link went silent for <silenceMs> (the contract's rule for
// streams: three heartbeats), or {"closed":code} if it closed first.
import { SseTestClient, TestClient } from '../../packages/testkit/dist/index.js';

const [transport, base, user, room, count, silenceMs] = process.argv.slice(2);
const say = (value) => process.stdout.write(`${JSON.stringify(value)}\n`);
const client = transport === 'sse'
  ? await SseTestClient.open(base, user, { timeoutMs: 30_000 })
  : await TestClient.connect(`${base.replace('http', 'ws')}/ws`, user, { timeoutMs: 30_000 });
let lastHeardAt = Date.now();
client.until(() => { lastHeardAt = Date.now(); return false; }, { timeoutMs: 600_000 }).catch(() => {});
await client.request({ type: 'join', room }, 30_000);
say({ joined: true });
await client.until(() => client.messages(room).length >= Number(count), { timeoutMs: 120_000, what: `${count} messages` });
say({ ids: client.messages(room).map((m) => m.id) });
const heard = () => Math.max(lastHeardAt, client.lastHeardAt ?? 0);
const started = Date.now();
for (;;) {
  if (client.closeInfo !== undefined) { say({ closed: client.closeInfo.code }); break; }
  if (Date.now() - heard() >= Number(silenceMs)) { say({ dead: Date.now() - started }); break; }
  await new Promise((resolve) => setTimeout(resolve, 50));
}
process.exit(0);
