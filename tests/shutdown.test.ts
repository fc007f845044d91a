import { TestClient } from '@chat/testkit';
import { describe, expect, inject, it } from 'vitest';
import { startGateway } from './helpers/gateways.js';

describe('SIGTERM', () => {
  it('closes every client with 1001 and exits 0 within the drain time', async () => {
    const gateway = await startGateway({ REDIS_URL: inject('redisUrl'), REDIS_PREFIX: 'shutdown-test:', DRAIN_TIMEOUT_MS: '5000' });
    const clients = await Promise.all(['a', 'b', 'c'].map((u) => TestClient.connect(gateway.wsUrl, u)));
    await Promise.all(clients.map((c) => c.request({ type: 'join', room: 'bye' })));
    const started = Date.now();
    const exit = await gateway.stop('SIGTERM');
    expect(exit).toEqual({ code: 0, signal: null });
    expect(Date.now() - started).toBeLessThan(5000);
    for (const c of clients) expect((await c.closed).code).toBe(1001);
    expect(gateway.logs.map((l) => l.msg)).toEqual(expect.arrayContaining(['shutting down', 'stopped']));
  });

  it('also stops cleanly on SIGINT', async () => {
    const gateway = await startGateway({ REDIS_URL: inject('redisUrl') });
    const client = await TestClient.connect(gateway.wsUrl, 'a');
    expect(await gateway.stop('SIGINT')).toEqual({ code: 0, signal: null });
    expect((await client.closed).code).toBe(1001);
  });
});
