#!/usr/bin/env node
// The least a clustered relay can do: uWebSockets.js + Redis pub/sub, one channel per room
// (subscribed on the room's first local join, dropped after its last leave), one PUBLISH of
// the finished message frame per message, and each frame from Redis published as it is to
// the room's uWS topic. No history, presence, counts, limits or checks. Enough of the
// protocol for the load generator: welcome, join -> joined, leave -> left, send -> ack.
// PORT, REDIS_URL, NODE_ID from the environment; logs {"msg":"listening","port":N}.
import { Redis } from 'ioredis';
import uWS from 'uWebSockets.js';

const node = process.env.NODE_ID ?? `relay-${process.pid}`;
const pub = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
const sub = pub.duplicate(); // a subscriber connection runs nothing else
const local = new Map(); // topic -> { members, subscribed: Promise }
let connections = 0;
let lastMs = 0;
let seq = 0;

const topic = (room) => `room:${room}`;
sub.on('messageBuffer', (channel, frame) => app.publish(channel.toString(), frame, false));

function joinLocal(room) {
  let entry = local.get(topic(room));
  if (!entry) local.set(topic(room), (entry = { members: 0, subscribed: sub.subscribe(topic(room)) }));
  entry.members++;
  return entry.subscribed;
}
function leaveLocal(room) {
  const entry = local.get(topic(room));
  if (entry && --entry.members === 0) { local.delete(topic(room)); void sub.unsubscribe(topic(room)).catch(() => {}); }
}
const reply = (ws, text) => { if (!ws.getUserData().closed) ws.send(text); };

const app = uWS.App().ws('/ws', {
  maxBackpressure: 64 * 1024 * 1024,
  upgrade: (res, req, context) => res.upgrade({ user: req.getQuery('user') ?? 'u', rooms: new Set(), closed: false },
    req.getHeader('sec-websocket-key'), req.getHeader('sec-websocket-protocol'), req.getHeader('sec-websocket-extensions'), context),
  open: (ws) => ws.send(`{"type":"welcome","user":"${ws.getUserData().user}","connection":"${node}-${++connections}","node":"${node}"}`),
  message: (ws, data) => {
    let frame;
    try { frame = JSON.parse(Buffer.from(data).toString()); } catch { return; }
    const { rooms, user } = ws.getUserData();
    const ref = frame.ref === undefined ? '' : `,"ref":${JSON.stringify(frame.ref)}`;
    if (frame.type === 'join' && !rooms.has(frame.room)) {
      rooms.add(frame.room);
      joinLocal(frame.room).then(() => {
        if (ws.getUserData().closed || !rooms.has(frame.room)) return;
        ws.subscribe(topic(frame.room));
        ws.send(`{"type":"joined","room":${JSON.stringify(frame.room)}${ref},"count":0,"members":[],"history":[]}`);
      }, () => reply(ws, `{"type":"error"${ref},"code":"unavailable","message":"redis"}`));
    } else if (frame.type === 'leave' && rooms.delete(frame.room)) {
      ws.unsubscribe(topic(frame.room));
      leaveLocal(frame.room);
      ws.send(`{"type":"left","room":${JSON.stringify(frame.room)}${ref}}`);
    } else if (frame.type === 'send' && rooms.has(frame.room)) {
      const ts = Date.now();
      const id = ts > lastMs ? `${(lastMs = ts)}-${(seq = 0)}` : `${lastMs}-${++seq}`; // increasing on this node
      const message = JSON.stringify({ type: 'message', room: frame.room, id, user, text: frame.text, ts });
      pub.publish(topic(frame.room), message).then(() => reply(ws, `{"type":"ack"${ref},"id":"${id}","ts":${ts}}`),
        () => reply(ws, `{"type":"error"${ref},"code":"unavailable","message":"redis"}`));
    }
  },
  close: (ws) => {
    const data = ws.getUserData();
    data.closed = true;
    for (const room of data.rooms) leaveLocal(room);
  },
}).listen('127.0.0.1', Number(process.env.PORT ?? 0), (socket) => {
  console.log(JSON.stringify({ msg: 'listening', port: uWS.us_socket_local_port(socket), node }));
});
process.on('SIGTERM', () => { pub.disconnect(); sub.disconnect(); process.exit(0); });
