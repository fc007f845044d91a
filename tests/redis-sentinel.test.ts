import { TestClient, startRedisSentinel, uniquePrefix, waitFor, type RedisSentinelHandle } from '@chat/testkit';
import type { ServerFrame } from '@chat/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { readyz, startGateway, type GatewayProcess } from './helpers/gateways.js';
import { expectTruthful, rejoin, storedIds } from './helpers/history.js';
import { cutReplication, replicaCaughtUp } from './helpers/replication.js';

/*
 * One primary, one replica, one sentinel. What survives the primary's death
 * depends on REDIS_WAIT_REPLICAS (docs/redis-topologies.md#durability): with 1,
 * an ack means the only replica, the one Sentinel promotes, has the message;
 * with 0, replication is asynchronous and acknowledged messages can be lost.
 * The replica is made to lag on purpose (cut off before the messages), so what
 * is lost is certain, and so is that every member is told.
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

  const send = async (client: TestClient, text: string): Promise<string> => {
    const reply = await client.request({ type: 'send', room: 'ops', text });
    if (reply.type !== 'ack') throw new Error(`not acknowledged: ${JSON.stringify(reply)}`);
    return reply.id;
  };
  const member = async (user: string): Promise<TestClient> => {
    const client = await TestClient.connect(gateways[0]!.wsUrl, user);
    clients.push(client);
    await client.request({ type: 'join', room: 'ops' });
    return client;
  };

  it('with REDIS_WAIT_REPLICAS=1, an acknowledged message survives the failover; an unconfirmed one is refused, and its readers are told it is gone', async () => {
    const { sentinel, a, b } = await setUp('1');
    await send(a, 'before');
    await b.waitFor((f: ServerFrame) => f.type === 'message' && f.text === 'before');
    await cutReplication(sentinel.command, sentinel.primaryPort, sentinel.replicaPort);
    // Published at once, but no replica confirms it: refused, with the warning that it may be lost.
    expect(await a.request({ type: 'send', room: 'ops', text: 'unconfirmed' })).toMatchObject({ type: 'error', code: 'unavailable' });
    const unconfirmed = await b.waitFor((f: ServerFrame) => f.type === 'message' && f.text === 'unconfirmed');

    const { old, promoted } = await failOver(sentinel);
    for (const c of [a, b]) expect((await c.closed).code).toBe(1013);
    expect((await rejoin(gateways[1]!.wsUrl, 'b', 'ops', unconfirmed.type === 'message' ? unconfirmed.id : '')).joined.recovered).toBe(false);
    // WAIT 1 needs a replica again: the old primary comes back, empty, as one.
    await sentinel.restart(old, { replicaOf: promoted });
    await sentinel.waitForReplica(old);
    await send(await member('a2'), 'after');
    expect(await newcomerHistory()).toEqual(['before', 'after']);
  });

  it('with REDIS_WAIT_REPLICAS=0, acknowledged messages a lagging replica lacked are lost in the failover, and every member is told', async () => {
    const { sentinel, a, b } = await setUp('0');
    const before = await send(a, 'before');
    await replicaCaughtUp(sentinel.command, sentinel.primaryPort, sentinel.replicaPort);
    await cutReplication(sentinel.command, sentinel.primaryPort, sentinel.replicaPort);
    const acked = [before];
    for (let i = 0; i < 3; i++) acked.push(await send(a, `lost ${i}`));
    await b.until(() => b.messages('ops').length === 4, { what: 'four messages' });

    await failOver(sentinel);
    for (const c of [a, b]) expect((await c.closed).code).toBe(1013);
    const rejoins = [
      await rejoin(gateways[1]!.wsUrl, 'b', 'ops', acked[3]!),
      await rejoin(gateways[0]!.wsUrl, 'early', 'ops', before),
    ];
    expect(rejoins.map((r) => r.joined.recovered)).toEqual([false, false]);
    acked.push(await send(await member('a2'), 'after'));
    expect(await newcomerHistory()).toEqual(['before', 'after']);
    expectTruthful(rejoins, acked, await storedIds(gateways[1]!.wsUrl, 'ops'));
  });
});
