import type { ErrorFrame, MessageFrame } from '@chat/protocol';
import { TestClient, startRedisServer, waitFor, type RedisServer } from '@chat/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readyz, startCluster, type Cluster } from './helpers/gateways.js';

/*
 * An outage of a durable Redis (AOF fsynced before every reply): nothing
 * acknowledged is lost, so members stay connected and miss nothing. What a
 * Redis that loses data does instead is in redis-durability.test.ts.
 */
describe('a durable Redis killed and restarted under three gateways', () => {
  let redis: RedisServer;
  let cluster: Cluster;
  let clients: TestClient[];

  beforeAll(async () => {
    redis = await startRedisServer({ persistence: 'aof-always' });
    cluster = await startCluster(3, redis.url, { BROKER_TIMEOUT_MS: '1000' });
    await waitFor(async () => (await Promise.all(cluster.gateways.map(readyz))).every((s) => s === 200), { what: 'ready' });
    clients = await Promise.all(cluster.gateways.map((g, i) => TestClient.connect(g.wsUrl, `user${i}`)));
    await Promise.all(clients.map((c) => c.request({ type: 'join', room: 'outage' })));
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await cluster.stop();
    await redis.cleanup();
  });

  it('refuses sends with unavailable while Redis is down, and resumes delivery on every gateway after', async () => {
    await clients[0]!.request({ type: 'send', room: 'outage', text: 'before' });
    for (const c of clients) await c.waitFor((f) => f.type === 'message' && f.text === 'before');

    await redis.kill();
    await waitFor(async () => (await Promise.all(cluster.gateways.map(readyz))).every((s) => s === 503), { what: 'not ready' });
    for (const c of clients) {
      const started = Date.now();
      const reply = await c.request({ type: 'send', room: 'outage', text: 'during' }, 6000);
      expect(reply).toMatchObject({ type: 'error', code: 'unavailable' } satisfies Partial<ErrorFrame>);
      expect(Date.now() - started).toBeLessThan(5000);
    }
    expect((await fetch(`${cluster.gateways[0]!.httpUrl}/healthz`)).status).toBe(200);

    await redis.start();
    await waitFor(async () => (await Promise.all(cluster.gateways.map(readyz))).every((s) => s === 200),
      { what: 'ready again', timeoutMs: 15_000 });
    for (const [i, c] of clients.entries()) {
      expect(await c.request({ type: 'send', room: 'outage', text: `after ${i}` })).toMatchObject({ type: 'ack' });
    }
    for (const c of clients) {
      await c.until(() => c.messages('outage').length === 4, { what: 'the three messages sent after the restart' });
      expect(c.messages('outage').map((m: MessageFrame) => m.text)).toEqual(['before', 'after 0', 'after 1', 'after 2']);
      expect(c.closeInfo).toBeUndefined();
    }
  });
});
