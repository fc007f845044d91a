import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import type { AckFrame, HistoryFrame } from '@chat/protocol';
import { TestClient, postgresForTests, redisContents, startRedisServer, startWebhookReceiver, waitFor, type RedisServer, type WebhookReceiver } from '@chat/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readyz, startArchiver, startCluster, type ArchiverProcess, type Cluster } from './helpers/gateways.js';
import { run } from './helpers/tools.js';

/*
 * "Erasure that is real": after POST /api/users/{user}/erase, the user's text
 * is nowhere in Redis (every key, read and DUMPed, and the AOF after a
 * rewrite) nor in a pg_dump of the archive, although the archiver lagged
 * behind the erase and webhook events quoting the text were still pending.
 */

const KEY = 'erasure-api-key-0123456789';
const SECRET = `zq${Math.random().toString(36).slice(2, 10)}`;

/** The AOF files once a rewrite has run with plain commands (no RDB preamble). */
async function rewrittenAof(redis: Redis): Promise<string> {
  await redis.config('SET', 'aof-use-rdb-preamble', 'no');
  await waitFor(async () => /aof_rewrite_in_progress:0/.test(await redis.info('persistence')), { what: 'no rewrite running' });
  await redis.bgrewriteaof();
  await waitFor(async () => {
    const info = await redis.info('persistence');
    return /aof_rewrite_in_progress:0/.test(info) && /aof_rewrite_scheduled:0/.test(info) && /aof_last_bgrewrite_status:ok/.test(info);
  }, { what: 'the AOF rewritten', timeoutMs: 15_000 });
  const [, dir] = await redis.config('GET', 'dir') as [string, string];
  const [, sub] = await redis.config('GET', 'appenddirname') as [string, string];
  const files = await readdir(join(dir, sub));
  return (await Promise.all(files.map((f) => readFile(join(dir, sub, f), 'latin1')))).join('\n');
}

describe('erasing a user: no trace where the guarantee table says none', () => {
  let redisServer: RedisServer;
  let redis: Redis;
  let postgres: Awaited<ReturnType<typeof postgresForTests>>;
  let databaseUrl: string;
  let cluster: Cluster;
  let archiver: ArchiverProcess;
  let receiver: WebhookReceiver;
  const clients: TestClient[] = [];
  const connect = async (gateway: number, user: string): Promise<TestClient> => {
    const client = await TestClient.connect(cluster.gateways[gateway]!.wsUrl, user);
    clients.push(client);
    return client;
  };

  beforeAll(async () => {
    redisServer = await startRedisServer({ persistence: 'aof-everysec' });
    redis = new Redis(redisServer.url);
    await redis.config('SET', 'rdbcompression', 'no');
    postgres = await postgresForTests();
    databaseUrl = await postgres.createDatabase('erasure');
    receiver = await startWebhookReceiver();
    receiver.respond(() => 503); // events stay pending in Redis, quoting the text
    cluster = await startCluster(3, redisServer.url, {
      API_KEY: KEY, DATABASE_URL: databaseUrl, WEBHOOK_URL: receiver.url, WEBHOOK_SECRET: 'erasure-webhook-secret', WEBHOOK_EVENTS: 'message.created,message.updated',
      WEBHOOK_RETRY_MIN_MS: '60000', WEBHOOK_RETRY_MAX_MS: '60000',
    });
    archiver = await startArchiver({ REDIS_URL: redisServer.url, REDIS_PREFIX: cluster.prefix, DATABASE_URL: databaseUrl });
    await waitFor(async () => (await Promise.all(cluster.gateways.map(readyz))).every((s) => s === 200), { what: 'ready' });
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.terminate()));
    await archiver?.stop();
    await cluster?.stop();
    await receiver?.close();
    redis?.disconnect();
    await redisServer?.cleanup();
    await postgres?.close();
  });

  it('erases the text from every page, every Redis key, the rewritten AOF and a pg_dump, while the archiver lags', async () => {
    const victim = await connect(0, 'er-victim');
    const friend = await connect(1, 'er-friend');
    const rooms = ['er-a', 'er-b'];
    for (const room of rooms) for (const c of [victim, friend]) await c.request({ type: 'join', room });
    const send = async (c: TestClient, room: string, text: string) => (await c.request({ type: 'send', room, text })) as AckFrame;
    const early = await send(victim, 'er-a', `${SECRET} archived first`);
    await victim.request({ type: 'edit', room: 'er-a', target: early.id, text: `${SECRET} archived, edited` });
    await friend.request({ type: 'react', room: 'er-a', target: early.id, reaction: 'eyes' });
    await send(friend, 'er-a', 'a reply that stays');
    const db = new pg.Client({ connectionString: databaseUrl });
    await db.connect();
    try {
      const archived = async (id: string) => {
        const [ms, seq] = id.split('-');
        return (await db.query('SELECT 1 FROM chat_messages WHERE room = $1 AND ms = $2 AND seq = $3', ['er-a', ms, seq])).rowCount === 1;
      };
      await waitFor(() => archived(early.id), { what: 'the first message archived', timeoutMs: 15_000 });
      process.kill(archiver.pid, 'SIGSTOP'); // the archiver lags from here
      try {
        await send(victim, 'er-a', `${SECRET} not archived yet`);
        await send(victim, 'er-b', `${SECRET} in another room`);
        await send(friend, 'er-b', 'another reply that stays');
        const answer = await fetch(`${cluster.gateways[2]!.httpUrl}/api/users/er-victim/erase`, { method: 'POST', headers: { Authorization: `Bearer ${KEY}` } });
        expect(answer.status).toBe(200);
        expect(await answer.json()).toMatchObject({ user: 'er-victim', erased: { stream: 3 } });
      } finally {
        process.kill(archiver.pid, 'SIGCONT');
      }
      const caughtUp = async () => {
        const streams = await redis.keys(`${cluster.prefix}room:{er-*}:log`);
        for (const stream of streams) {
          const [newest] = await redis.xrevrange(stream, '+', '-', 'COUNT', 1);
          if (newest !== undefined && (await redis.get(stream.replace(/:log$/, ':archived'))) !== newest[0]) return false;
        }
        return streams.length === 2;
      };
      await waitFor(caughtUp, { what: 'the archiver caught up', timeoutMs: 20_000 });

      for (const room of rooms) {
        const page = await friend.request({ type: 'history', room }) as HistoryFrame;
        expect(page.messages.filter((m) => m.user === 'er-victim').every((m) => m.deleted === true && m.text === '')).toBe(true);
        expect(JSON.stringify(page)).not.toContain(SECRET);
      }
      const rows = await db.query(`SELECT count(*)::int AS n FROM chat_messages WHERE body LIKE '","user":"er-victim"%'`);
      expect(rows.rows[0].n).toBe(3); // tombstones, also for the two the archiver never saw as messages

      expect(await redisContents(redis, '*', { dump: true })).not.toContain(SECRET);
      expect(await rewrittenAof(redis)).not.toContain(SECRET);
      const { status, stdout, stderr } = await run('pg_dump', ['--data-only', databaseUrl]);
      expect(status, stderr).toBe(0);
      expect(stdout).toContain('a reply that stays'); // the dump is of the right database
      expect(stdout).not.toContain(SECRET);
    } finally {
      await db.end();
    }
  });
});
