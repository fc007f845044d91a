import type { AckFrame, MessageFrame } from '@chat/protocol';
import { compareIds } from '@chat/protocol';
import { TestClient, postgresForTests, sleep, startPostgres, startRedisCluster, uniquePrefix, waitFor, type PostgresServer, type RedisClusterHandle } from '@chat/testkit';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { readyz, startArchiver, startCluster, startGateway, type ArchiverProcess, type Cluster, type GatewayProcess } from './helpers/gateways.js';
import { scrape } from './helpers/metrics.js';

/*
 * The PostgreSQL archive: every acknowledged message reaches it once, and
 * history past the Redis window (HISTORY_SIZE=100 here) is served from it,
 * with no gap and no duplicate at the boundary.
 */
const HISTORY = { HISTORY_SIZE: '100', JOIN_HISTORY: '20', RATE_LIMIT_PER_SEC: '5000', RATE_LIMIT_BURST: '5000' };

/** Every archived id of `room`, oldest first, straight from PostgreSQL. */
async function archivedIds(databaseUrl: string, room: string): Promise<string[]> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ id: string }>("SELECT ms || '-' || seq AS id FROM chat_messages WHERE room = $1 ORDER BY ms, seq", [room]);
    return rows.map((r) => r.id);
  } finally {
    await client.end();
  }
}

/** Sends `count` messages from `clients` in turn, waiting for each ack; resolves with the acked ids, in order. */
async function post(clients: TestClient[], room: string, count: number, label = 'm'): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const reply = await clients[i % clients.length]!.request({ type: 'send', room, text: `${label} ${i}` });
    if (reply.type !== 'ack') throw new Error(`send ${i} refused: ${JSON.stringify(reply)}`);
    ids.push((reply as AckFrame).id);
  }
  return ids;
}

/** Pages back with `history` from the newest message to the very first, 50 at a time. */
async function pageAll(client: TestClient, room: string): Promise<MessageFrame[]> {
  const all: MessageFrame[] = [];
  for (let before: string | undefined; ;) {
    const reply = await client.request(before === undefined ? { type: 'history', room, limit: 50 } : { type: 'history', room, before, limit: 50 });
    if (reply.type !== 'history') throw new Error(JSON.stringify(reply));
    if (reply.messages.length === 0) return all;
    all.unshift(...reply.messages);
    before = reply.messages[0]!.id;
  }
}

describe('the archive on three gateways and one archiver', () => {
  let postgres: Awaited<ReturnType<typeof postgresForTests>>;
  let databaseUrl: string;
  let cluster: Cluster;
  let archiver: ArchiverProcess;
  const clients: TestClient[] = [];
  beforeAll(async () => {
    postgres = await postgresForTests();
    databaseUrl = await postgres.createDatabase('archive');
    cluster = await startCluster(3, inject('redisUrl'), { ...HISTORY, DATABASE_URL: databaseUrl });
    archiver = await startArchiver({ REDIS_URL: inject('redisUrl'), REDIS_PREFIX: cluster.prefix, DATABASE_URL: databaseUrl });
    await waitFor(async () => (await Promise.all(cluster.gateways.map(readyz))).every((s) => s === 200), { what: 'ready' });
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
  });
  afterAll(async () => {
    await archiver?.stop();
    await cluster?.stop();
    await postgres?.close();
  });
  const member = async (gateway: number, user: string, room: string) => {
    const client = await TestClient.connect(cluster.gateways[gateway]!.wsUrl, user);
    clients.push(client);
    await client.request({ type: 'join', room });
    return client;
  };

  it('archives 1,000 messages from three gateways; history pages back to the first across the boundary, and a rejoin from message 10 recovers 990', async () => {
    const senders = await Promise.all([0, 1, 2].map((g) => member(g, `sender${g}`, 'deep')));
    const acked = await post(senders, 'deep', 1000);
    await waitFor(async () => (await archivedIds(databaseUrl, 'deep')).length === 1000, { what: 'all 1000 archived', timeoutMs: 20_000 });
    expect(await archivedIds(databaseUrl, 'deep')).toEqual(acked);

    const reader = await member(1, 'reader', 'deep');
    const paged = await pageAll(reader, 'deep');
    expect(paged.map((m) => m.id)).toEqual(acked);
    expect(paged.map((m) => m.text)).toEqual(acked.map((_, i) => `m ${i}`));
    expect(paged[0]).toMatchObject({ type: 'message', room: 'deep', user: 'sender0' });

    const away = await TestClient.connect(cluster.gateways[2]!.wsUrl, 'away');
    clients.push(away);
    const joined = await away.request({ type: 'join', room: 'deep', since: acked[9]! });
    expect(joined).toMatchObject({ type: 'joined', recovered: true });
    expect(joined.type === 'joined' && joined.history.map((m) => m.id)).toEqual(acked.slice(10));
  });

  it('tells a rejoin from before the archive began that it cannot recover, and one from an id it never had', async () => {
    const [writer] = [await member(0, 'writer', 'unknown-since')];
    await post([writer], 'unknown-since', 5);
    const away = await TestClient.connect(cluster.gateways[1]!.wsUrl, 'away2');
    clients.push(away);
    expect(await away.request({ type: 'join', room: 'unknown-since', since: '1-0' })).toMatchObject({ type: 'joined', recovered: false });
  });

  it('shows the archiver ready, its metrics, and a lag back at zero once caught up', async () => {
    expect((await fetch(`${archiver.httpUrl}/readyz`)).status).toBe(200);
    await waitFor(async () => (await scrape(`${archiver.httpUrl}/metrics`)).get('chat_archive_lag_seconds') === 0, { what: 'lag 0' });
    const metrics = await scrape(`${archiver.httpUrl}/metrics`);
    expect(metrics.get('chat_archive_rows_total')).toBeGreaterThanOrEqual(1000);
    expect(metrics.get('chat_archive_write_errors_total')).toBe(0);
  });
});

describe('the archiver through crashes: its own, and PostgreSQL\'s', () => {
  let postgres: PostgresServer;
  let databaseUrl: string;
  let cluster: Cluster;
  const archivers: ArchiverProcess[] = [];
  const clients: TestClient[] = [];
  beforeAll(async () => {
    postgres = await startPostgres(); // its own: this test stops it
    databaseUrl = await postgres.createDatabase('crash');
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await Promise.all(archivers.map((a) => a.stop()));
    await cluster?.stop();
    await postgres?.cleanup();
  });

  it('SIGKILLed mid-stream and restarted, two sharing the work, PostgreSQL stopped for 10 s: everything acked is archived once', async () => {
    cluster = await startCluster(2, inject('redisUrl'), { ...HISTORY, DATABASE_URL: databaseUrl, HISTORY_SIZE: '5000' });
    const archiverEnv = { REDIS_URL: inject('redisUrl'), REDIS_PREFIX: cluster.prefix, DATABASE_URL: databaseUrl, ARCHIVE_BATCH: '50', ARCHIVE_LEASE_MS: '2000' };
    archivers.push(await startArchiver({ ...archiverEnv, NODE_ID: 'a1' }));
    const rooms = ['crash-0', 'crash-1', 'crash-2', 'crash-3'];
    const writers = await Promise.all(rooms.map(async (room, i) => {
      const client = await TestClient.connect(cluster.gateways[i % 2]!.wsUrl, `w${i}`);
      clients.push(client);
      await client.request({ type: 'join', room });
      return client;
    }));
    const acked = new Map(rooms.map((r) => [r, [] as string[]]));
    let sending = true;
    const traffic = Promise.all(rooms.map(async (room, i) => {
      for (let n = 0; sending; n++) {
        const reply = await writers[i]!.request({ type: 'send', room, text: `t ${n}` });
        if (reply.type === 'ack') acked.get(room)!.push(reply.id);
        await sleep(5);
      }
    }));
    const total = () => [...acked.values()].reduce((a, ids) => a + ids.length, 0);
    let killed: ArchiverProcess | undefined;
    let postgresDown = false;
    const live = () => archivers.filter((a) => a !== killed);
    const lag = async () => Math.max(...await Promise.all(live().map(async (a) => (await scrape(`${a.httpUrl}/metrics`)).get('chat_archive_lag_seconds') ?? 0)));

    try {
    await waitFor(() => total() >= 400, { what: 'traffic' });
    killed = archivers[0]!;
    await killed.kill(); // mid-stream: it writes every 50 ms
    archivers.push(await startArchiver({ ...archiverEnv, NODE_ID: 'a2' }), await startArchiver({ ...archiverEnv, NODE_ID: 'a3' }));
    await waitFor(() => total() >= 800, { what: 'traffic after the kill' });

    await postgres.stop();
    postgresDown = true;
    const stoppedAt = Date.now();
    await waitFor(async () => (await lag()) >= 3, { what: 'the lag to grow while PostgreSQL is down', timeoutMs: 15_000 });
    await waitFor(async () => (await Promise.all(live().map(async (a) => (await fetch(`${a.httpUrl}/readyz`)).status))).every((s) => s === 503),
      { what: '/readyz 503 while PostgreSQL is down' });
    await sleep(Math.max(0, 10_000 - (Date.now() - stoppedAt)));
    const ackedDuringOutage = total();
    await postgres.start();
    postgresDown = false;
    await waitFor(() => total() >= ackedDuringOutage + 200, { what: 'traffic after PostgreSQL is back' });
    } finally {
      sending = false;
      await traffic;
      if (postgresDown) await postgres.start(); // the test failed while it was down
    }

    for (const room of rooms) {
      await waitFor(async () => (await archivedIds(databaseUrl, room)).length >= acked.get(room)!.length,
        { what: `${room} caught up`, timeoutMs: 20_000 });
      const archived = await archivedIds(databaseUrl, room);
      expect(archived, room).toEqual(acked.get(room));
    }
    const metrics = await Promise.all(live().map((a) => scrape(`${a.httpUrl}/metrics`)));
    expect(metrics.reduce((sum, m) => sum + m.get('chat_archive_write_errors_total')!, 0)).toBeGreaterThan(0); // the outage was seen
    await waitFor(async () => (await lag()) === 0, { what: 'the lag back at zero' });
    for (const a of live()) await waitFor(async () => (await fetch(`${a.httpUrl}/readyz`)).status === 200, { what: 'ready again' });
  }, 120_000);

  it('holds unarchived messages past the Redis window while no archiver runs, and archives all of them once one starts', async () => {
    const prefix = uniquePrefix('hold');
    const holdDb = await postgres.createDatabase('hold');
    const small = await startCluster(1, inject('redisUrl'), { ...HISTORY, REDIS_PREFIX: prefix, DATABASE_URL: holdDb, HISTORY_SIZE: '20', ARCHIVE_HOLD: '300' });
    try {
      const writer = await TestClient.connect(small.gateways[0]!.wsUrl, 'writer');
      clients.push(writer);
      await writer.request({ type: 'join', room: 'held' });
      const sent = await post([writer], 'held', 250, 'before any archiver');
      archivers.push(await startArchiver({ REDIS_URL: inject('redisUrl'), REDIS_PREFIX: prefix, DATABASE_URL: holdDb }));
      await waitFor(async () => (await archivedIds(holdDb, 'held')).length === sent.length, { what: 'all 250 archived' });
      expect(await archivedIds(holdDb, 'held')).toEqual(sent);
      const back = await TestClient.connect(small.gateways[0]!.wsUrl, 'back');
      clients.push(back);
      expect(await back.request({ type: 'join', room: 'held', since: sent[5]! })).toMatchObject({ type: 'joined', recovered: true });
    } finally {
      await small.stop();
    }
  }, 60_000);

  it('records messages trimmed past the hold before they were archived as a loss: a rejoin from before them is not told it recovered', async () => {
    const prefix = uniquePrefix('trim');
    const lossDb = await postgres.createDatabase('loss');
    const small = await startCluster(1, inject('redisUrl'), { ...HISTORY, REDIS_PREFIX: prefix, DATABASE_URL: lossDb, HISTORY_SIZE: '20', ARCHIVE_HOLD: '50' });
    try {
      const archiverEnv = { REDIS_URL: inject('redisUrl'), REDIS_PREFIX: prefix, DATABASE_URL: lossDb };
      const first = await startArchiver({ ...archiverEnv, NODE_ID: 'early' });
      const writer = await TestClient.connect(small.gateways[0]!.wsUrl, 'writer');
      clients.push(writer);
      await writer.request({ type: 'join', room: 'trimmed' });
      const early = await post([writer], 'trimmed', 10);
      await waitFor(async () => (await archivedIds(lossDb, 'trimmed')).length === 10, { what: 'the first 10 archived' });
      await first.stop();
      const missed = await post([writer], 'trimmed', 200, 'while the archiver was away'); // far past HISTORY_SIZE + ARCHIVE_HOLD
      archivers.push(await startArchiver({ ...archiverEnv, NODE_ID: 'late' }));
      await waitFor(async () => (await archivedIds(lossDb, 'trimmed')).at(-1) === missed.at(-1), { what: 'the archive to catch up with what is left' });
      const back = await TestClient.connect(small.gateways[0]!.wsUrl, 'back');
      clients.push(back);
      expect(await back.request({ type: 'join', room: 'trimmed', since: early[5]! })).toMatchObject({ type: 'joined', recovered: false });
      const archived = await archivedIds(lossDb, 'trimmed');
      expect(archived.slice(0, 10)).toEqual(early);
      expect(archived.length).toBeLessThan(210); // the trimmed ones are gone: not papered over, marked
      expect(archived).toEqual([...archived].sort(compareIds));
    } finally {
      await small.stop();
    }
  }, 60_000);
});

describe('the archive on a Redis Cluster (3 primaries)', () => {
  let redis: RedisClusterHandle;
  let postgres: Awaited<ReturnType<typeof postgresForTests>>;
  const gateways: GatewayProcess[] = [];
  let archiver: ArchiverProcess | undefined;
  const clients: TestClient[] = [];
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await archiver?.stop();
    await Promise.all(gateways.map((g) => g.stop()));
    await redis?.stop();
    await postgres?.close();
  });

  it('archives rooms of every shard, from sets on each room\'s own slot, and pages them back', async () => {
    redis = await startRedisCluster({ primaries: 3, replicasPerPrimary: 0 });
    postgres = await postgresForTests();
    const databaseUrl = await postgres.createDatabase('cluster');
    // A window the archiver cannot fall behind here: this is about where rooms are found, not about lag.
    const env = { ...HISTORY, HISTORY_SIZE: '1000', REDIS_URL: '', REDIS_CLUSTER_NODES: redis.seeds, REDIS_PREFIX: uniquePrefix('rca'), DATABASE_URL: databaseUrl };
    for (const id of ['gw-1', 'gw-2']) gateways.push(await startGateway({ ...env, NODE_ID: id }));
    archiver = await startArchiver({ ...env, NODE_ID: 'cluster-archiver' });
    await waitFor(async () => (await Promise.all(gateways.map(readyz))).every((s) => s === 200), { what: 'ready', timeoutMs: 15_000 });
    await waitFor(async () => (await fetch(`${archiver!.httpUrl}/readyz`)).status === 200, { what: 'archiver ready', timeoutMs: 15_000 });
    const rooms = Array.from({ length: 9 }, (_, i) => `sharded-${i}`); // spread over the three primaries
    const acked = new Map<string, string[]>();
    for (const [i, room] of rooms.entries()) {
      const client = await TestClient.connect(gateways[i % 2]!.wsUrl, `w${i}`);
      clients.push(client);
      await client.request({ type: 'join', room });
      acked.set(room, await post([client], room, 150));
    }
    for (const room of rooms) {
      await waitFor(async () => (await archivedIds(databaseUrl, room)).length === 150, { what: `${room} archived`, timeoutMs: 20_000 });
      expect(await archivedIds(databaseUrl, room)).toEqual(acked.get(room));
    }
    const reader = clients[0]!;
    await reader.request({ type: 'join', room: rooms[4]! });
    expect((await pageAll(reader, rooms[4]!)).map((m) => m.id)).toEqual(acked.get(rooms[4]!));
    expect((await scrape(`${archiver!.httpUrl}/metrics`)).get('chat_archive_losses_total')).toBe(0);
  }, 60_000);
});
