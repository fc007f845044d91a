#!/usr/bin/env node
// The physical limit of local fan-out: one uWebSockets.js process, no Redis, no checks,
// speaking just enough of the protocol (welcome, join, send -> message + ack) for the load generator.
import uWS from 'uWebSockets.js';

let seq = 0;
const app = uWS.App().ws('/ws', {
  maxBackpressure: 64 * 1024 * 1024,
  upgrade: (res, req, context) => {
    res.upgrade({ user: req.getQuery('user') ?? 'u' }, req.getHeader('sec-websocket-key'),
      req.getHeader('sec-websocket-protocol'), req.getHeader('sec-websocket-extensions'), context);
  },
  open: (ws) => ws.send(`{"type":"welcome","user":"${ws.getUserData().user}","connection":"c","node":"raw-uws"}`),
  message: (ws, data) => {
    const frame = JSON.parse(Buffer.from(data).toString());
    if (frame.type === 'join') {
      ws.subscribe(frame.room);
      ws.send(JSON.stringify({ type: 'joined', room: frame.room, ref: frame.ref, members: [], history: [] }));
    } else if (frame.type === 'send') {
      const id = `${Date.now()}-${seq++}`;
      const ts = Date.now();
      app.publish(frame.room, JSON.stringify({ type: 'message', room: frame.room, id, user: ws.getUserData().user, text: frame.text, ts }));
      ws.send(`{"type":"ack","id":"${id}","ts":${ts}}`);
    }
  },
}).listen('127.0.0.1', Number(process.env.PORT ?? 0), (socket) => {
  console.log(JSON.stringify({ msg: 'listening', port: uWS.us_socket_local_port(socket) }));
});
process.on('SIGTERM', () => process.exit(0));
