import { keySlot } from '@chat/broker';
import { compareIds, type AckFrame, type ServerFrame } from '@chat/protocol';
import { TestClient, sleep, startRedisCluster, uniquePrefix, waitFor, type RedisClusterHandle } from '@chat/testkit';
import { connect } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readyz, startGateway, type GatewayProcess } from './helpers/gateways.js';
import { expectToldOfLoss, expectTruthful, rejoin, steadySender, storedIds } from './helpers/history.js';
import { scrape } from './helpers/metrics.js';
import { cutReplication } from './helpers/replication.js';

/*
 * Real Redis Clusters (redis-server --cluster-enabled yes, redis-cli --cluster create)
 * under real gateway processes: rooms spread over shards with sharded pub/sub, the
 * gateways follow failovers by themselves, and the deaf-subscriber check catches a
 * connection that stopped hearing.
 */

const FAST = {
  REDIS_URL: '', // the cluster is chosen by REDIS_CLUSTER_NODES
  RATE_LIMIT_PER_SEC: '2000',
  RATE_LIMIT_BURST: '2000',
  JOIN_HISTORY: '1000',
  REDIS_PROBE_INTERVAL_MS: '200',
  REDIS_PROBE_TIMEOUT_MS: '1000',
  BROKER_TIMEOUT_MS: '1000',
};

async function startGateways(cluster: RedisClusterHandle, count: number, env: Record<string, string> = {}): Promise<GatewayProcess[]> {
  const prefix = uniquePrefix('rc');
  const gateways = await Promise.all(Array.from({ length: count }, (_, i) => startGateway({
    ...FAST, REDIS_CLUSTER_NODES: cluster.seeds, REDIS_PREFIX: prefix, NODE_ID: `gw-${i + 1}`, ...env,
  })));
  await waitFor(async () => (await Promise.all(gateways.map(readyz))).every((s) => s === 200), { what: 'gateways ready', timeoutMs: 15_000 });
  return gateways;
}

/** Room names whose slot each primary owns: `perShard` for each, keyed by the primary's port. */
async function roomsByShard(cluster: RedisClusterHandle, prefix: string, perShard: number): Promise<Map<number, string[]>> {
  const primaries = await cluster.primaries();
  const owner = (slot: number) => primaries.find((p) => p.slots.some(([from, to]) => slot >= from && slot <= to))!.port;
  const out = new Map<number, string[]>(primaries.map((p) => [p.port, []]));
  for (let i = 0; [...out.values()].some((rooms) => rooms.length < perShard); i++) {
    const room = `room-${i}`;
    const rooms = out.get(owner(keySlot(`${prefix}room:{${room}}`)))!;
    if (rooms.length < perShard) rooms.push(room);
  }
  return out;
}

describe('gateways on a Redis Cluster (3 primaries, 3 replicas)', () => {
  let cluster: RedisClusterHandle;
  let gateways: GatewayProcess[];
  let prefix: string;
  const clients: TestClient[] = [];

  beforeAll(async () => {
    cluster = await startRedisCluster({ primaries: 3, replicasPerPrimary: 1 });
    prefix = uniquePrefix('rc');
    gateways = await startGateways(cluster, 3, { REDIS_PREFIX: prefix });
  }, 60_000);
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
  });
  afterAll(async () => {
    await Promise.all((gateways ?? []).map((g) => g.stop()));
    await cluster?.stop();
  });

  const connect = async (gateway: number, user: string): Promise<TestClient> => {
    const client = await TestClient.connect(gateways[gateway]!.wsUrl, user);
    clients.push(client);
    return client;
  };

  it('spreads rooms over the shards and delivers every message once, in order, through its room\'s shard only', async () => {
    const byShard = await roomsByShard(cluster, prefix, 2);
    const rooms = [...byShard.values()].flat();
    expect(byShard.size).toBe(3);

    const members = await Promise.all([0, 1, 2].map((g) => connect(g, `member${g}`)));
    for (const member of members) for (const room of rooms) await member.request({ type: 'join', room });
    // Each room's channel is subscribed on its own primary only, once per gateway.
    for (const [port, owned] of byShard) {
      for (const room of rooms) {
        const reply = await cluster.command(port, 'PUBSUB', 'SHARDNUMSUB', `${prefix}room:{${room}}`);
        const subscribers = Number(reply.trim().split('\n').at(-1));
        expect(subscribers, `${room} on ${port}`).toBe(owned.includes(room) ? 3 : 0);
      }
    }

    // Watch every primary while one room of the first shard gets traffic.
    const [watchedPort, watchedRooms] = [...byShard][0]!;
    const watched = watchedRooms[0]!;
    const monitors = new Map([...byShard.keys()].map((port) => [port, monitorMentions(port, `{${watched}}`)]));
    await Promise.all([...monitors.values()].map((m) => m.ready));

    const perMember = 15;
    const acks = await Promise.all(members.flatMap((m, i) => rooms.flatMap((room) =>
      Array.from({ length: perMember }, (_, n) => m.request({ type: 'send', room, text: `${i}:${room}:${n}` })))));
    expect(acks.filter((a) => a.type !== 'ack')).toEqual([]);
    const ackedByRoom = new Map<string, string[]>();
    acks.forEach((ack, k) => {
      const room = rooms[Math.floor(k / perMember) % rooms.length]!;
      ackedByRoom.set(room, [...(ackedByRoom.get(room) ?? []), (ack as AckFrame).id]);
    });
    for (const room of rooms) {
      const expected = ackedByRoom.get(room)!.sort(compareIds);
      expect(expected).toHaveLength(members.length * perMember);
      for (const member of members) {
        await member.until(() => member.messages(room).length >= expected.length, { what: `${room} complete`, timeoutMs: 10_000 });
        expect(member.messages(room).map((m) => m.id)).toEqual(expected);
      }
    }
    await sleep(200);
    for (const m of monitors.values()) m.close();
    expect(monitors.get(watchedPort)!.count(), 'the room\'s own shard sees its traffic').toBeGreaterThanOrEqual(members.length * perMember);
    for (const [port, m] of monitors) if (port !== watchedPort) expect(m.count(), `shard ${port} never sees room ${watched}`).toBe(0);
  });

  it('catches a subscriber that stopped hearing (CLIENT PAUSE WRITE), reports it, and recovers', async () => {
    const [port] = [...(await roomsByShard(cluster, prefix, 1)).keys()];
    // Writes (PUBLISH/SPUBLISH) stall on that primary; PING still answers, so only the probe can tell.
    await cluster.command(port!, 'CLIENT', 'PAUSE', '2500', 'WRITE');
    await waitFor(async () => (await readyz(gateways[0]!)) === 503, { what: '/readyz 503 while deaf', timeoutMs: 3000 });
    const body = await (await fetch(`${gateways[0]!.httpUrl}/readyz`)).json() as { deafSubscribers: number };
    expect(body.deafSubscribers).toBeGreaterThanOrEqual(1);
    expect((await scrape(`${gateways[0]!.httpUrl}/metrics`)).get('chat_broker_deaf_subscribers')).toBeGreaterThanOrEqual(1);
    await waitFor(async () => (await readyz(gateways[0]!)) === 200, { what: '/readyz 200 after the pause', timeoutMs: 8000 });
    const metrics = await scrape(`${gateways[0]!.httpUrl}/metrics`);
    expect(metrics.get('chat_broker_deaf_subscribers')).toBe(0);
    expect(metrics.get('chat_broker_probe_failures_total')).toBeGreaterThanOrEqual(1);
  });

  it('recovers by itself when the primary kills its subscriber connections (CLIENT KILL TYPE pubsub), with no gap', async () => {
    const [port, [room]] = [...(await roomsByShard(cluster, prefix, 1))][0]!;
    const members = await Promise.all([0, 1, 2].map((g) => connect(g, `killed${g}`)));
    for (const member of members) await member.request({ type: 'join', room: room! });
    const traffic = steadySender(members[0]!, room!, 20);
    await waitFor(() => traffic.acked().length >= 20, { what: 'traffic before the kill' });
    expect(Number(await cluster.command(port!, 'CLIENT', 'KILL', 'TYPE', 'pubsub'))).toBeGreaterThanOrEqual(3);
    const ackedAtKill = traffic.acked().length;
    await waitFor(() => traffic.acked().length >= ackedAtKill + 30, { what: 'traffic after the kill', timeoutMs: 10_000 });
    await traffic.stop();
    await waitFor(async () => (await Promise.all(gateways.map(readyz))).every((s) => s === 200), { what: 'ready again' });
    await expectEveryAckedOnceInOrder(members, room!, traffic.acked());
  });

  it('follows a room whose slot moves to another primary while messages flow, and no member misses one', async () => {
    const byShard = await roomsByShard(cluster, prefix, 1);
    const shards = [...byShard];
    const [from, [room]] = shards[0]!;
    const [to] = shards[1]!;
    const members = await Promise.all([0, 1, 2].map((g) => connect(g, `mover${g}`)));
    for (const member of members) await member.request({ type: 'join', room: room! });
    const traffic = steadySender(members[0]!, room!, 20);
    await waitFor(() => traffic.acked().length >= 20, { what: 'traffic before the move' });
    await moveSlot(cluster, keySlot(`${prefix}room:{${room}}`), from, to!);
    const ackedAtMove = traffic.acked().length;
    await waitFor(() => traffic.acked().length >= ackedAtMove + 50, { what: 'traffic after the move', timeoutMs: 15_000 });
    await traffic.stop();
    await expectEveryAckedOnceInOrder(members, room!, traffic.acked());
    await waitFor(async () => {
      const reply = await cluster.command(to!, 'PUBSUB', 'SHARDNUMSUB', `${prefix}room:{${room}}`);
      return Number(reply.trim().split('\n').at(-1)) === 3;
    }, { what: 'subscriptions on the new owner', timeoutMs: 5000 });
  });

  it('follows a manual failover, which drops shard subscriptions without closing the connection', async () => {
    const byShard = await roomsByShard(cluster, prefix, 1);
    const [primary, [room]] = [...byShard][1]!;
    const replica = await cluster.replicaOf(primary);
    const [a, b] = await Promise.all([connect(0, 'fa'), connect(2, 'fb')]);
    await a.request({ type: 'join', room: room! });
    await b.request({ type: 'join', room: room! });
    await cluster.command(replica, 'CLUSTER', 'FAILOVER');
    await waitFor(async () => (await cluster.primaryForSlot(keySlot(`${prefix}room:{${room}}`))) === replica, { what: 'replica promoted', timeoutMs: 10_000 });
    // Sends may be refused while the gateways move their subscriptions; then everything flows again.
    await waitFor(async () => (await a.request({ type: 'send', room: room!, text: 'after failover' })).type === 'ack', { what: 'send accepted', timeoutMs: 10_000 });
    await b.waitFor((f: ServerFrame) => f.type === 'message' && f.text === 'after failover', { timeoutMs: 5000 });
    // Both gateways with members re-make their subscription on the new primary (by slot-map refresh or probe).
    await waitFor(async () => {
      const reply = await cluster.command(replica, 'PUBSUB', 'SHARDNUMSUB', `${prefix}room:{${room}}`);
      return Number(reply.trim().split('\n').at(-1)) === 2;
    }, { what: 'two subscribers on the new primary', timeoutMs: 8000 });
  });
});

/*
 * A primary killed under traffic, with and without WAIT. Its two replicas are cut
 * off first (as a replication lag would leave them), so the failover certainly
 * promotes a replica that lacks the newest writes: with REDIS_WAIT_REPLICAS=2
 * (every replica) none of those was acknowledged; without WAIT they were, are
 * lost, and every member is told.
 */
describe('a primary killed while messages flow, its replicas lagging (3 primaries, 2 replicas each)', () => {
  let cluster: RedisClusterHandle;
  const gateways: GatewayProcess[] = [];
  const clients: TestClient[] = [];
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await Promise.all(gateways.map((g) => g.stop()));
    await cluster?.stop();
  });

  it('loses no acknowledged message with REDIS_WAIT_REPLICAS=2, and tells every member what was lost without it', async () => {
    cluster = await startRedisCluster({ primaries: 3, replicasPerPrimary: 2 });
    const settings = [{ wait: '2', prefix: uniquePrefix('rcw') }, { wait: '0', prefix: uniquePrefix('rcp') }];
    const sets = await Promise.all(settings.map(async ({ wait, prefix }) => {
      const pair = await startGateways(cluster, 2, { REDIS_PREFIX: prefix, REDIS_WAIT_REPLICAS: wait, REDIS_WAIT_TIMEOUT_MS: '500' });
      gateways.push(...pair);
      return { wait, prefix, pair };
    }));
    // One room per setting, both on the primary that will be killed.
    const victim = (await cluster.primaries())[0]!.port;
    const replicas = await replicasOf(cluster, victim);
    const rooms = await Promise.all(sets.map(async ({ prefix }) => (await roomsByShard(cluster, prefix, 1)).get(victim)![0]!));

    const runs = await Promise.all(sets.map(async ({ pair }, i) => {
      const [sender, reader] = await Promise.all([TestClient.connect(pair[0]!.wsUrl, 'sender'), TestClient.connect(pair[1]!.wsUrl, 'reader')]);
      clients.push(sender, reader);
      await sender.request({ type: 'join', room: rooms[i]! });
      await reader.request({ type: 'join', room: rooms[i]! });
      return { sender, reader, traffic: [steadySender(sender, rooms[i]!, 10)], cut: [] as string[] };
    }));
    await waitFor(() => runs.every((r) => r.traffic[0]!.acked().length >= 100), { what: '100 acks each', timeoutMs: 10_000 });
    await Promise.all(runs.map((r) => r.traffic[0]!.stop()));
    for (const replica of replicas) await cutReplication(cluster.command, victim, replica);
    // Certainly stored after the cut, so on the primary only: without WAIT acknowledged, with WAIT 2 refused.
    for (const [i, r] of runs.entries()) {
      for (let n = 0; n < (sets[i]!.wait === '0' ? 10 : 2); n++) {
        const reply = await r.sender.request({ type: 'send', room: rooms[i]!, text: `after the cut ${n}` }, 5000);
        if (reply.type === 'ack') r.cut.push(reply.id);
        else expect(reply).toMatchObject({ type: 'error', code: 'unavailable' });
      }
      r.traffic.push(steadySender(r.sender, rooms[i]!, 10)); // the kill comes under traffic
    }
    expect(runs.map((r) => r.cut.length)).toEqual([0, 10]);
    const killedAt = Date.now();
    await cluster.kill(victim);
    const promoted = await cluster.waitForFailover(victim);
    const failoverMs = Date.now() - killedAt;
    // The replica left behind, and the old primary once back, resync from the new one: WAIT 2 can succeed again.
    for (const replica of replicas) await cluster.command(replica, 'CONFIG', 'SET', 'masterauth', '');
    await cluster.restart(victim);
    // Members were closed to resync; new senders carry on until both settings get acks again.
    await waitFor(async () => (await Promise.all(gateways.map(readyz))).every((s) => s === 200), { what: 'ready after the failover', timeoutMs: 15_000 });
    const after = await Promise.all(sets.map(async ({ pair }, i) => {
      const sender = await joinedClient(pair[0]!.wsUrl, 'sender2', rooms[i]!);
      clients.push(sender);
      return steadySender(sender, rooms[i]!, 10);
    }));
    await waitFor(() => after.every((t) => t.acked().length >= 50), { what: 'acks after the failover', timeoutMs: 30_000 });
    await Promise.all([...runs.map((r) => r.traffic[1]!.stop()), ...after.map((t) => t.stop())]);

    const report = await Promise.all(runs.map(async ({ reader, traffic, cut }, i) => {
      const acked = [...traffic.flatMap((t) => t.acked()), ...cut, ...after[i]!.acked()];
      const stored = await storedIds(sets[i]!.pair[1]!.wsUrl, rooms[i]!);
      // The reader comes back with since = the last message it had, as a reconnecting client does.
      const back = await rejoin(sets[i]!.pair[1]!.wsUrl, 'reader', rooms[i]!, reader.messages(rooms[i]).at(-1)!.id);
      expectTruthful([back], acked, stored);
      await expectToldOfLoss(reader, rooms[i]!, stored);
      const kept = new Set(stored);
      expect(cut.filter((id) => kept.has(id)), 'acknowledged after the cut: gone with the primary').toEqual([]);
      return {
        waitReplicas: sets[i]!.wait, acked: acked.length, refused: sum(traffic.map((t) => t.refused())), lost: acked.filter((id) => !kept.has(id)).length,
        readerClosed: await closeCode(reader, sets[i]!.wait === '0'), recovered: back.joined.recovered,
      };
    }));
    process.stdout.write(`${JSON.stringify({ failoverMs, promoted, report })}\n`);
    expect(report[0]).toMatchObject({ waitReplicas: '2', lost: 0 });
    expect(report[1]!.lost).toBeGreaterThanOrEqual(10);
    expect(report[1]).toMatchObject({ readerClosed: 1013, recovered: false });
  });
});

/**
 * A client joined to `room`, as a reconnecting client gets there: a join that
 * is answered `unavailable`, or whose socket is closed 1013 (a resync racing
 * it), is tried again on a new connection.
 */
async function joinedClient(url: string, user: string, room: string): Promise<TestClient> {
  return waitFor(async () => {
    const client = await TestClient.connect(url, user);
    const reply = await client.request({ type: 'join', room }).catch(() => undefined);
    if (reply?.type === 'joined') return client;
    await client.close();
    return undefined;
  }, { what: `${user} to join ${room}`, timeoutMs: 15_000 });
}

const sum = (list: number[]) => list.reduce((a, b) => a + b, 0);

/** The replicas of a primary, as a live node sees them. */
async function replicasOf(cluster: RedisClusterHandle, primary: number): Promise<number[]> {
  const id = (await cluster.command(primary, 'CLUSTER', 'MYID')).trim();
  const lines = (await cluster.command(primary, 'CLUSTER', 'REPLICAS', id)).split('\n').filter(Boolean);
  return lines.map((line) => Number(/:(\d+)@/.exec(line)![1]));
}

/** Every member ends with every acknowledged message of `room`, none twice, in id order. */
async function expectEveryAckedOnceInOrder(members: TestClient[], room: string, acked: string[]): Promise<void> {
  for (const member of members) {
    await member.until(() => acked.every((id) => member.messages(room).some((m) => m.id === id)), { what: `${member.label} has every acked message`, timeoutMs: 10_000 });
    const ids = member.messages(room).map((m) => m.id);
    expect(new Set(ids).size, 'no duplicates').toBe(ids.length);
    expect([...ids].sort(compareIds), 'in order').toEqual(ids);
  }
}

/** Moves one slot and its keys between primaries, as `redis-cli --cluster reshard` does. */
async function moveSlot(cluster: RedisClusterHandle, slot: number, from: number, to: number): Promise<void> {
  const id = async (port: number) => (await cluster.command(port, 'CLUSTER', 'MYID')).trim();
  const [fromId, toId] = await Promise.all([id(from), id(to)]);
  await cluster.command(to, 'CLUSTER', 'SETSLOT', slot, 'IMPORTING', fromId);
  await cluster.command(from, 'CLUSTER', 'SETSLOT', slot, 'MIGRATING', toId);
  for (;;) {
    const keys = (await cluster.command(from, 'CLUSTER', 'GETKEYSINSLOT', slot, 100)).split('\n').filter(Boolean);
    if (keys.length === 0) break;
    await cluster.command(from, 'MIGRATE', '127.0.0.1', to, '', 0, 5000, 'KEYS', ...keys);
  }
  for (const { port } of await cluster.primaries()) await cluster.command(port, 'CLUSTER', 'SETSLOT', slot, 'NODE', toId);
}

/** Counts the commands a Redis node runs (MONITOR, over a plain socket) that mention `needle`. */
function monitorMentions(port: number, needle: string) {
  const socket = connect(port, '127.0.0.1');
  let pending = '';
  let count = 0;
  const ready = new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.write('MONITOR\r\n');
      resolve();
    });
  });
  socket.on('data', (chunk: Buffer) => {
    const lines = (pending + chunk.toString('latin1')).split('\r\n');
    pending = lines.pop()!;
    for (const line of lines) if (line.includes(needle)) count++;
  });
  socket.on('error', () => {});
  return { ready, count: () => count, close: () => socket.destroy() };
}

/** How `client` was closed; when `expectClose`, waits for it (its socket is not ordered with the test's others). */
async function closeCode(client: TestClient, expectClose: boolean): Promise<number | undefined> {
  if (expectClose) await client.until(() => client.closeInfo !== undefined, { what: 'the close', timeoutMs: 10_000 });
  return client.closeInfo?.code;
}
