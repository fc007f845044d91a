import { sleep, waitFor } from '@chat/testkit';
import { describe, expect, it } from 'vitest';
import { metric, trackTestGateways } from './harness.js';

const { gateway, connect } = trackTestGateways();

describe('slow consumers', () => {
  it('closes a socket whose send buffer stays full with 1013, without stalling the room', async () => {
    const g = await gateway({ SEND_BUFFER_BYTES: '65536', RATE_LIMIT_PER_SEC: '100000', RATE_LIMIT_BURST: '100000' });
    const slow = await connect(g, 'slow');
    const fast = await connect(g, 'fast');
    await slow.request({ type: 'join', room: 'r' });
    await fast.request({ type: 'join', room: 'r' });
    (slow.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket.pause();
    const text = 'y'.repeat(4000);
    const total = 2500; // 10 MB: more than loopback socket buffers absorb
    for (let i = 0; i < total; i++) {
      fast.send({ type: 'send', room: 'r', text });
      if (i % 40 === 39) await sleep(20); // about 8 MB/s, as a busy room might see
    }
    await fast.until(() => fast.messages('r').length === total, { timeoutMs: 30_000, what: 'every message on the fast client' });
    await waitFor(async () => (await metric(g, 'chat_backpressure_closes_total')) === 1, { what: 'a backpressure close' });
    expect(await metric(g, 'chat_connections')).toBe(1);
    (slow.ws as unknown as { _socket: { resume(): void } })._socket.resume();
    expect((await slow.closed).code).toBe(1013);
    // Nothing after a gap: what the slow client did get is a prefix of the room.
    const got = slow.messages('r').map((m) => m.id);
    expect(got).toEqual(fast.messages('r').slice(0, got.length).map((m) => m.id));
  }, 60_000);
});

describe('broker outage', () => {
  it('answers unavailable, reports not ready, and recovers by itself', async () => {
    const g = await gateway();
    const a = await connect(g, 'alice');
    await a.request({ type: 'join', room: 'r' });
    g.broker.setAvailable(false);
    expect(await a.request({ type: 'send', room: 'r', text: 'lost?' })).toMatchObject({ type: 'error', code: 'unavailable' });
    expect(await a.request({ type: 'join', room: 'other' })).toMatchObject({ type: 'error', code: 'unavailable' });
    const notReady = await fetch(`${g.httpUrl}/readyz`);
    expect(notReady.status).toBe(503);
    expect(await notReady.json()).toMatchObject({ ready: false, broker: 'down' });
    g.broker.setAvailable(true);
    expect((await fetch(`${g.httpUrl}/readyz`)).status).toBe(200);
    const ack = await a.request({ type: 'send', room: 'r', text: 'back' });
    expect(ack).toMatchObject({ type: 'ack' });
    await a.waitFor((f) => f.type === 'message' && f.text === 'back');
    expect(a.messages('r').map((m) => m.text)).toEqual(['back']);
  });
});

describe('shutdown', () => {
  it('refuses new work, closes every socket with 1001 and reports not ready', async () => {
    const g = await gateway();
    const a = await connect(g, 'alice');
    const b = await connect(g, 'bob');
    await a.request({ type: 'join', room: 'r' });
    const closing = g.gateway.close();
    expect(g.gateway.readiness()).toMatchObject({ ready: false, draining: true });
    await closing;
    expect((await a.closed).code).toBe(1001);
    expect((await b.closed).code).toBe(1001);
  });
});
