import type { AckFrame, JoinedFrame, OpenedFrame, RoomsFrame, UnreadFrame } from '@chat/protocol';
import { TestClient, postgresForTests, startRedisServer, waitFor, type RedisServer } from '@chat/testkit';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readyz, startArchiver, startCluster, type ArchiverProcess, type Cluster } from './helpers/gateways.js';

/** How many of `room`'s messages are archived. */
async function archivedCount(databaseUrl: string, room: string): Promise<number> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ n: string }>('SELECT count(*) AS n FROM chat_messages WHERE room = $1', [room]);
    return Number(rows[0]!.n);
  } finally {
    await client.end();
  }
}

/*
 * Membership and read positions kept in PostgreSQL beside the archive: a Redis
 * restarted empty (no persistence at all) gets them back before anything uses them.
 */
describe('conversations when Redis restarts empty, with the archive on', () => {
  let postgres: Awaited<ReturnType<typeof postgresForTests>>;
  let databaseUrl: string;
  let redis: RedisServer;
  let cluster: Cluster;
  let archiver: ArchiverProcess;
  const clients: TestClient[] = [];
  beforeAll(async () => {
    postgres = await postgresForTests();
    databaseUrl = await postgres.createDatabase('conversations');
    redis = await startRedisServer({ persistence: 'none' });
    cluster = await startCluster(3, redis.url, { DATABASE_URL: databaseUrl, BROKER_TIMEOUT_MS: '1000' });
    archiver = await startArchiver({ REDIS_URL: redis.url, REDIS_PREFIX: cluster.prefix, DATABASE_URL: databaseUrl });
    await waitFor(async () => (await Promise.all(cluster.gateways.map(readyz))).every((s) => s === 200), { what: 'ready' });
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
  });
  afterAll(async () => {
    await archiver?.stop();
    await cluster?.stop();
    await redis?.cleanup();
    await postgres?.close();
  });
  const connect = async (gateway: number, user: string) => {
    const client = await TestClient.connect(cluster.gateways[gateway]!.wsUrl, user);
    clients.push(client);
    return client;
  };

  it('keeps members, read positions and exact counts, and refuses outsiders, after Redis lost everything', async () => {
    const alice = await connect(0, 'alice');
    const room = (await alice.request({ type: 'open', with: 'bob' }) as OpenedFrame).room;
    await alice.request({ type: 'join', room });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(((await alice.request({ type: 'send', room, text: `to bob ${i}` })) as AckFrame).id);
    const bob = await connect(1, 'bob');
    expect(await bob.request({ type: 'read', room, id: ids[1]! })).toMatchObject({ type: 'unread', count: 3 });
    await bob.request({ type: 'join', room });
    const reply = (await bob.request({ type: 'send', room, text: 'back to alice' }) as AckFrame).id;
    ids.push(reply);
    for (let i = 0; i < 2; i++) ids.push(((await alice.request({ type: 'send', room, text: `more ${i}` })) as AckFrame).id);
    // bob: read up to his own reply, 2 unread since; alice: her read position is her last message, 0 unread.
    await waitFor(async () => (await archivedCount(databaseUrl, room)) === ids.length, { what: 'every message archived' });

    await redis.kill();
    await redis.start(); // empty: no persistence at all
    await waitFor(async () => (await Promise.all(cluster.gateways.map(readyz))).every((s) => s === 200), { what: 'ready again', timeoutMs: 20_000 });

    // Some gateway found Redis without its conversations and wrote the room back (once, however many restored at once).
    const written = () => cluster.gateways.flatMap((g) => g.logs).filter((l) => l.msg === 'conversations restored from the archive')
      .reduce((sum, l) => sum + Number(l.written), 0);
    await waitFor(() => written() === 1, { what: 'the room restored from the archive' });

    const [bobAgain, aliceAgain, mallory] = [await connect(2, 'bob'), await connect(0, 'alice'), await connect(1, 'mallory')];
    const bobs = await bobAgain.request({ type: 'rooms' }) as RoomsFrame;
    expect(bobs.rooms).toMatchObject([{ room, unread: 2, read: reply, with: 'alice' }]);
    const alices = await aliceAgain.request({ type: 'rooms' }) as RoomsFrame;
    expect(alices.rooms).toMatchObject([{ room, unread: 0, read: ids.at(-1), with: 'bob' }]);
    expect(await mallory.request({ type: 'join', room })).toMatchObject({ type: 'error', code: 'forbidden' });

    // Counting goes on from where it was: a new message makes bob's count 3, on every device.
    const joined = await aliceAgain.request({ type: 'join', room }) as JoinedFrame;
    expect(joined.type).toBe('joined');
    await aliceAgain.request({ type: 'send', room, text: 'after the restart' });
    await bobAgain.until(() => bobAgain.frames.some((f) => f.type === 'unread' && f.room === room && f.count === 3), { what: 'count 3' });
    const back = await bobAgain.request({ type: 'read', room, id: ids.at(-1)! }) as UnreadFrame;
    expect(back).toMatchObject({ type: 'unread', count: 1 });
  });
});
