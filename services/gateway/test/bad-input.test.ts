import { sleep, waitFor } from '@chat/testkit';
import { describe, expect, it } from 'vitest';
import { metric, trackTestGateways } from './harness.js';

const { gateway, connect } = trackTestGateways();

describe('rate limit', () => {
  it('answers frames over the bucket with rate_limited, then closes a client that keeps flooding with 1008', async () => {
    const g = await gateway({ RATE_LIMIT_BURST: '5', RATE_LIMIT_PER_SEC: '1', RATE_LIMIT_CLOSE_AFTER: '10' });
    const flooder = await connect(g, 'flooder');
    const bystander = await connect(g, 'bystander');
    for (let i = 0; i < 5; i++) expect(await flooder.request({ type: 'ping' })).toMatchObject({ type: 'pong' });
    expect(await flooder.request({ type: 'ping' })).toMatchObject({ type: 'error', code: 'rate_limited' });
    for (let i = 0; i < 50; i++) flooder.send({ type: 'ping', ref: `f${i}` });
    expect(await flooder.closed).toMatchObject({ code: 1008 });
    expect(await bystander.request({ type: 'ping' })).toMatchObject({ type: 'pong' });
    expect(await metric(g, 'chat_rate_limited_total')).toBeGreaterThanOrEqual(10);
  });

  it('accepts 20 frames per second sustained and a burst of 100 with the defaults', async () => {
    const client = await connect(await gateway(), 'steady');
    const burst = Array.from({ length: 100 }, () => client.request({ type: 'ping' }));
    expect((await Promise.all(burst)).every((f) => f.type === 'pong')).toBe(true);
    for (let i = 0; i < 30; i++) {
      await sleep(50);
      expect(await client.request({ type: 'ping' })).toMatchObject({ type: 'pong' });
    }
  });
});

describe('bad input', () => {
  it('answers garbage with an error code and keeps the connection and everyone else served', async () => {
    const g = await gateway();
    const hostile = await connect(g, 'hostile');
    const good = await connect(g, 'good');
    await good.request({ type: 'join', room: 'r' });
    hostile.send(Buffer.from([0xde, 0xad, 0xbe, 0xef]), true);
    hostile.send('{"type":');
    hostile.send({ type: 'explode', ref: 'e1' });
    hostile.send({ type: 'send', room: 'r', text: 'x'.repeat(5000), ref: 'big' });
    hostile.send({ type: 'join', room: '../../etc', ref: 'dots' });
    hostile.send('\u0000\u0001 not json');
    await hostile.until(() => hostile.ofType('error').length === 6, { what: 'six errors' });
    expect(hostile.ofType('error').map((e) => e.code)).toEqual(['bad_request', 'bad_request', 'bad_request', 'payload_too_large', 'bad_request', 'bad_request']);
    expect(hostile.ofType('error').filter((e) => e.ref !== undefined).map((e) => e.ref)).toEqual(['e1', 'big', 'dots']);
    expect(await hostile.request({ type: 'ping' })).toMatchObject({ type: 'pong' });
    expect(await good.request({ type: 'send', room: 'r', text: 'still here' })).toMatchObject({ type: 'ack' });
  });

  it('closes with 1009 on a frame over MAX_FRAME_BYTES, however large', async () => {
    const g = await gateway({ MAX_FRAME_BYTES: '4096', MAX_TEXT_LENGTH: '1000' });
    for (const size of [4097, 1024 * 1024]) {
      const c = await connect(g, 'big');
      c.send('x'.repeat(size));
      expect((await c.closed).code).toBe(1009);
    }
    expect(await (await connect(g, 'next')).request({ type: 'ping' })).toMatchObject({ type: 'pong' });
    await waitFor(async () => (await metric(g, 'chat_connections_closed_total{code="1009"}')) === 2, { what: 'both closes counted' });
  });
});
