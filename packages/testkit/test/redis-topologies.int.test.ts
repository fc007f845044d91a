import { Cluster, Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startRedisCluster, startRedisSentinel, type RedisClusterHandle, type RedisSentinelHandle } from '@chat/testkit';

/** Clients a test opened; closed after it even when it fails, so no reconnect loop outlives it. */
const clients: Array<Redis | Cluster> = [];
const track = <T extends Redis | Cluster>(client: T): T => {
  clients.push(client);
  return client;
};
afterEach(() => {
  for (const client of clients.splice(0)) client.disconnect();
});

describe('startRedisCluster', () => {
  let cluster: RedisClusterHandle | undefined;
  beforeAll(async () => {
    cluster = await startRedisCluster();
  });
  afterAll(async () => {
    await cluster?.stop();
  });
  const handle = (): RedisClusterHandle => cluster!;
  const slotOf = async (key: string): Promise<number> => Number(await handle().command(handle().nodes[0]!.port, 'CLUSTER', 'KEYSLOT', key));

  it('has 3 primaries with slots; keys and sharded pub/sub land on the owning primary', async () => {
    const primaries = await handle().primaries();
    expect(primaries).toHaveLength(3);
    for (const p of primaries) expect(p.slots.length).toBeGreaterThan(0);
    expect(handle().nodes).toHaveLength(6);

    const [seedHost, seedPort] = handle().seeds.split(',')[0]!.split(':');
    const client = track(new Cluster([{ host: seedHost, port: Number(seedPort) }]));
    const owners = new Set<number>();
    for (const tag of ['a', 'b', 'c']) {
      const key = `{${tag}}x`;
      await client.set(key, `value-${tag}`);
      const owner = await handle().primaryForSlot(await slotOf(key));
      owners.add(owner);
      expect(await handle().command(owner, 'GET', key)).toBe(`value-${tag}`);
      const other = primaries.find((p) => p.port !== owner)!.port;
      await expect(handle().command(other, 'GET', key)).rejects.toThrow(/MOVED/);
    }
    expect(owners.size).toBe(3);

    const channel = '{a}events';
    const owner = await handle().primaryForSlot(await slotOf(channel));
    const subscriber = track(new Redis({ host: '127.0.0.1', port: owner }));
    const received = new Promise<[string, string]>((resolve) => subscriber.on('smessage', (ch: string, msg: string) => resolve([ch, msg])));
    await subscriber.ssubscribe(channel);
    expect(await client.spublish(channel, 'hello')).toBe(1);
    expect(await received).toEqual([channel, 'hello']);
  });

  it('fails a killed primary over to its replica', async () => {
    const victim = await handle().primaryForSlot(await slotOf('{a}survivor'));
    const replica = await handle().replicaOf(victim);
    const direct = track(new Redis({ host: '127.0.0.1', port: victim }));
    await direct.set('{a}survivor', 'yes');
    // Replication is asynchronous: make sure the replica has the write before the crash.
    expect(await direct.wait(1, 2000)).toBe(1);
    direct.disconnect();

    await handle().kill(victim);
    expect(await handle().waitForFailover(victim)).toBe(replica);

    const ports = (await handle().primaries()).map((p) => p.port);
    expect(ports).toHaveLength(3);
    expect(ports).toContain(replica);
    expect(ports).not.toContain(victim);
    for (const node of handle().nodes.filter((n) => n.port !== victim)) {
      expect(await handle().command(node.port, 'CLUSTER', 'INFO')).toMatch(/cluster_state:ok/);
    }
    expect(await handle().command(replica, 'GET', '{a}survivor')).toBe('yes');
  });
});

describe('startRedisSentinel', () => {
  let setup: RedisSentinelHandle | undefined;
  beforeAll(async () => {
    setup = await startRedisSentinel();
  });
  afterAll(async () => {
    await setup?.stop();
  });
  const handle = (): RedisSentinelHandle => setup!;
  const sentinelClient = (): Redis => {
    const [host, port] = handle().sentinels.split(':');
    return track(new Redis({ sentinels: [{ host, port: Number(port) }], name: handle().masterName }));
  };

  it('fails over to the replica and a fresh sentinel client writes to it', async () => {
    const before = sentinelClient();
    await before.set('k', 'v1');
    before.disconnect();
    expect(await handle().currentPrimary()).toBe(handle().primaryPort);

    await handle().kill(handle().primaryPort);
    const promoted = await handle().waitForFailover(handle().primaryPort);
    expect(promoted).toBe(handle().replicaPort);
    expect(await handle().currentPrimary()).toBe(promoted);

    const after = sentinelClient();
    await after.set('k', 'v2');
    expect(await handle().command(promoted, 'GET', 'k')).toBe('v2');
  });
});
