#!/usr/bin/env node
// The comparison baseline: a small chat server on Socket.IO 4.8 with @socket.io/redis-adapter,
// the shape people build first. join/leave/send with acks; `message` events to the room, sender included.
// PORT, REDIS_URL, NODE_ID from the environment; logs one JSON line {"msg":"listening","port":N}.
import { createServer } from 'node:http';
import { createAdapter } from '@socket.io/redis-adapter';
import { Redis } from 'ioredis';
import { Server } from 'socket.io';

const nodeId = process.env.NODE_ID ?? `sio-${process.pid}`;
const pub = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
const sub = pub.duplicate();
const http = createServer();
const io = new Server(http, { adapter: createAdapter(pub, sub), transports: ['websocket'], serveClient: false });
let seq = 0;

io.on('connection', (socket) => {
  const user = String(socket.handshake.query.user ?? 'anonymous');
  socket.emit('welcome', nodeId);
  socket.on('join', (room, ack) => {
    socket.join(String(room));
    if (typeof ack === 'function') ack();
  });
  socket.on('leave', (room, ack) => {
    socket.leave(String(room));
    if (typeof ack === 'function') ack();
  });
  socket.on('send', ({ room, text }, ack) => {
    io.to(String(room)).emit('message', { room, id: `${Date.now()}-${seq++}`, user, text, ts: Date.now() });
    if (typeof ack === 'function') ack(true);
  });
});

http.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  console.log(JSON.stringify({ msg: 'listening', port: http.address().port, node: nodeId }));
});
process.on('SIGTERM', () => { io.close(); pub.disconnect(); sub.disconnect(); process.exit(0); });
