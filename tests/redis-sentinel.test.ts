import { TestClient, startRedisSentinel, uniquePrefix, waitFor, type RedisSentinelHandle } from '@chat/testkit';
import type { ServerFrame } from '@chat/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { readyz, startGateway, type GatewayProcess } from './helpers/gateways.js';

/*
 * One primary, one replica, one sentinel. What survives the primary's death
 * depends on REDIS_WAIT_REPLICAS (docs/redis-topologies.md#durability): with 1,
 * an ack means the only replica, the one Sentinel promotes, has the message;
 * with 0, replication is asynchronous and an acknowledged message may be lost,
 * so that test asserts only that chat resumes by itself.
 */
describe('gateways on a Sentinel-managed primary', () => {
  let sentinel: RedisSentinelHandle | undefined;
  const gateways: GatewayProcess[] = [];
  const clients: TestClient[] = [];
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await Promise.all(gateways.splice(0).map((g) => g.stop()));
    await sentinel?.stop();
    sentinel = undefined;
  });

  const setUp = async (waitReplicas: string): Promise<{ sentinel: RedisSentinelHandle; a: TestClient; b: TestClient }> => {
    sentinel = await startRedisSentinel();
    const prefix = uniquePrefix('sentinel');
    for (const id of ['gw-1', 'gw-2']) {
      gateways.push(await startGateway({
        REDIS_URL: '', REDIS_SENTINELS: sentinel.sentinels, REDIS_SENTINEL_MASTER: sentinel.masterName,
        REDIS_PREFIX: prefix, NODE_ID: id, BROKER_TIMEOUT_MS: '1000', REDIS_PROBE_INTERVAL_MS: '200', REDIS_PROBE_TIMEOUT_MS: '1000',
        REDIS_WAIT_REPLICAS: waitReplicas, REDIS_WAIT_TIMEOUT_MS: '1000',
      }));
    }
    await allReady('ready', 10_000);
    const [a, b] = await Promise.all([TestClient.connect(gateways[0]!.wsUrl, 'a'), TestClient.connect(gateways[1]!.wsUrl, 'b')]);
    clients.push(a, b);
    for (const c of [a, b]) await c.request({ type: 'join', room: 'ops' });
    return { sentinel, a, b };
  };
  const allReady = (what: string, timeoutMs: number) =>
    waitFor(async () => (await Promise.all(gateways.map(readyz))).every((s) => s === 200), { what, timeoutMs });
  const failOver = async (handle: RedisSentinelHandle): Promise<{ old: number; promoted: number }> => {
    const old = handle.primaryPort;
    await handle.kill(old);
    const promoted = await handle.waitForFailover(old);
    expect(promoted).toBe(handle.replicaPort);
    await allReady('ready after failover', 15_000);
    return { old, promoted };
  };
  const newcomerHistory = async (): Promise<string[]> => {
    const c = await TestClient.connect(gateways[1]!.wsUrl, 'c');
    clients.push(c);
    const joined = await c.request({ type: 'join', room: 'ops' });
    return joined.type === 'joined' ? joined.history.map((m) => m.text) : [];
  };

  it('with REDIS_WAIT_REPLICAS=1, a message acknowledged before the primary dies is still there after the failover', async () => {
    const { sentinel, a, b } = await setUp('1');
    expect(await a.request({ type: 'send', room: 'ops', text: 'before' })).toMatchObject({ type: 'ack' });
    await b.waitFor((f: ServerFrame) => f.type === 'message' && f.text === 'before');

    const { old, promoted } = await failOver(sentinel);
    // WAIT 1 needs a replica again: the old primary comes back, empty, as one.
    await sentinel.restart(old, { replicaOf: promoted });
    await sentinel.waitForReplica(old);
    expect(await a.request({ type: 'send', room: 'ops', text: 'after' })).toMatchObject({ type: 'ack' });
    await b.waitFor((f: ServerFrame) => f.type === 'message' && f.text === 'after', { timeoutMs: 5000 });
    expect(await newcomerHistory()).toEqual(['before', 'after']);
  });

  it('with REDIS_WAIT_REPLICAS=0, chat resumes on both gateways by themselves after the failover', async () => {
    const { sentinel, a, b } = await setUp('0');
    expect(await a.request({ type: 'send', room: 'ops', text: 'before' })).toMatchObject({ type: 'ack' });
    await b.waitFor((f: ServerFrame) => f.type === 'message' && f.text === 'before');

    await failOver(sentinel);
    await waitFor(async () => (await a.request({ type: 'send', room: 'ops', text: 'after' })).type === 'ack', { what: 'send accepted', timeoutMs: 10_000 });
    await b.waitFor((f: ServerFrame) => f.type === 'message' && f.text === 'after', { timeoutMs: 5000 });
    // 'before' may or may not have reached the replica in time: only 'after' is certain.
    expect(await newcomerHistory()).toContain('after');
  });
});
