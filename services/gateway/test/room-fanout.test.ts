import pino from 'pino';
import uWS from 'uWebSockets.js';
import WebSocket from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '@chat/testkit';
import { LocalRoom } from '../src/rooms/local-room.js';
import { Session } from '../src/session.js';
import { WebSocketSink, type SocketData } from '../src/transports/websocket/socket-sink.js';

const LIMITS = { rateLimitPerSec: 10, rateLimitBurst: 10, rateLimitCloseAfter: 10 };

/** A uWS app whose sockets become sessions, and `count` clients that record what they get. */
async function socketsOf(count: number) {
  const sessions: Session[] = [];
  const app = uWS.App().ws<SocketData>('/ws', {
    upgrade(res, req, context) {
      const session = new Session(`c${sessions.length}`, { user: `u${sessions.length}`, rooms: null, dm: null, mod: [] }, '127.0.0.1', LIMITS, Date.now(), pino({ level: 'silent' }), { wrote() {} }, 'ws');
      res.upgrade({ session }, req.getHeader('sec-websocket-key'), req.getHeader('sec-websocket-protocol'), req.getHeader('sec-websocket-extensions'), context);
    },
    open(ws) {
      const { session } = ws.getUserData();
      session.attach(new WebSocketSink(ws));
      sessions.push(session);
    },
  });
  const listen = await new Promise<uWS.us_listen_socket>((resolve) => app.listen('127.0.0.1', 0, (s) => resolve(s as uWS.us_listen_socket)));
  const port = uWS.us_socket_local_port(listen as unknown as uWS.us_socket);
  const received: string[][] = [];
  const clients = await Promise.all(Array.from({ length: count }, async (_, i) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
    received[i] = [];
    ws.on('message', (data) => received[i]!.push(data.toString()));
    await new Promise((resolve) => ws.once('open', resolve));
    return ws;
  }));
  await waitFor(() => sessions.length === count, { what: 'sessions open' });
  return {
    app, sessions, received,
    close() {
      for (const ws of clients) ws.terminate();
      uWS.us_listen_socket_close(listen);
    },
  };
}

describe('a room fanning out to WebSockets', () => {
  let close = () => {};
  afterEach(() => close());

  it('gives members in no other room the message published just before a publish that skips them', async () => {
    const sockets = await socketsOf(3);
    close = sockets.close;
    const room = new LocalRoom('r', Promise.resolve());
    const [first, second, other] = sockets.sessions as [Session, Session, Session];
    for (const s of sockets.sessions) room.admit(s);
    // Both publishes in one turn, before uWS writes either: the skipped members leave the topic for the second.
    room.publish(sockets.app, 'message');
    room.publishExcept(sockets.app, 'occupancy', [first, second]);
    await waitFor(() => sockets.received[2]!.length === 2, { what: 'both frames to the other member', timeoutMs: 2000 });
    expect(sockets.received[2]).toEqual(['message', 'occupancy']);
    await waitFor(() => sockets.received[0]!.length >= 1 && sockets.received[1]!.length >= 1, { what: 'the message to the skipped members', timeoutMs: 2000 });
    expect(sockets.received.slice(0, 2)).toEqual([['message'], ['message']]);
    expect([first, second, other].every((s) => room.isJoined(s))).toBe(true);
  });

  it('gives a rejoining member the messages published to it before it left the topic', async () => {
    const sockets = await socketsOf(1);
    close = sockets.close;
    const room = new LocalRoom('r', Promise.resolve());
    const [member] = sockets.sessions as [Session];
    room.admit(member);
    room.publish(sockets.app, 'before');
    room.dismiss(member); // a rejoin starts: nothing new until its range is out
    room.publish(sockets.app, 'while away');
    await waitFor(() => sockets.received[0]!.length >= 1, { what: 'the message published before', timeoutMs: 2000 });
    expect(sockets.received[0]).toEqual(['before']);
  });
});
