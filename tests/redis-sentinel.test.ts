import { TestClient, startRedisSentinel, uniquePrefix, waitFor, type RedisSentinelHandle } from '@chat/testkit';
import type { ServerFrame } from '@chat/protocol';
import { afterAll, describe, expect, it } from 'vitest';
import { readyz, startGateway, type GatewayProcess } from './helpers/gateways.js';

describe('gateways on a Sentinel-managed primary', () => {
  let sentinel: RedisSentinelHandle;
  const gateways: GatewayProcess[] = [];
  const clients: TestClient[] = [];
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await Promise.all(gateways.map((g) => g.stop()));
    await sentinel?.stop();
  });

  it('chat across gateways, and again by themselves after Sentinel fails the primary over', async () => {
    sentinel = await startRedisSentinel();
    const prefix = uniquePrefix('sentinel');
    for (const id of ['gw-1', 'gw-2']) {
      gateways.push(await startGateway({
        REDIS_URL: '', REDIS_SENTINELS: sentinel.sentinels, REDIS_SENTINEL_MASTER: sentinel.masterName,
        REDIS_PREFIX: prefix, NODE_ID: id, BROKER_TIMEOUT_MS: '1000', REDIS_PROBE_INTERVAL_MS: '200', REDIS_PROBE_TIMEOUT_MS: '1000',
      }));
    }
    await waitFor(async () => (await Promise.all(gateways.map(readyz))).every((s) => s === 200), { what: 'ready' });
    const [a, b] = await Promise.all([TestClient.connect(gateways[0]!.wsUrl, 'a'), TestClient.connect(gateways[1]!.wsUrl, 'b')]);
    clients.push(a, b);
    for (const c of [a, b]) await c.request({ type: 'join', room: 'ops' });
    expect(await a.request({ type: 'send', room: 'ops', text: 'before' })).toMatchObject({ type: 'ack' });
    await b.waitFor((f: ServerFrame) => f.type === 'message' && f.text === 'before');

    const old = sentinel.primaryPort;
    await sentinel.kill(old);
    const promoted = await sentinel.waitForFailover(old);
    expect(promoted).toBe(sentinel.replicaPort);
    await waitFor(async () => (await Promise.all(gateways.map(readyz))).every((s) => s === 200), { what: 'ready after failover', timeoutMs: 15_000 });
    await waitFor(async () => (await a.request({ type: 'send', room: 'ops', text: 'after' })).type === 'ack', { what: 'send accepted', timeoutMs: 10_000 });
    await b.waitFor((f: ServerFrame) => f.type === 'message' && f.text === 'after', { timeoutMs: 5000 });
    // The message from before the failover was replicated: a newcomer still finds it.
    const c = await TestClient.connect(gateways[1]!.wsUrl, 'c');
    clients.push(c);
    const joined = await c.request({ type: 'join', room: 'ops' });
    expect(joined.type === 'joined' && joined.history.map((m) => m.text)).toEqual(expect.arrayContaining(['before', 'after']));
  });
});
