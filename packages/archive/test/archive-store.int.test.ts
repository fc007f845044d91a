import { postgresForTests } from '@chat/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArchiveStore, MIGRATIONS, migrate } from '../src/index.js';

const WEEK = 7 * 24 * 3600 * 1000;
const msg = (ms: number, seq: number, text = `${ms}-${seq}`) => ({ id: `${ms}-${seq}`, body: `|${text}>` });

describe('ArchiveStore on a real PostgreSQL', () => {
  let postgres: Awaited<ReturnType<typeof postgresForTests>>;
  const opened: ArchiveStore[] = [];
  beforeAll(async () => {
    postgres = await postgresForTests();
  });
  afterAll(async () => {
    await Promise.all(opened.map((s) => s.close()));
    await postgres?.close();
  });
  const fresh = async (): Promise<[ArchiveStore, string]> => {
    const url = await postgres.createDatabase('store');
    const store = await ArchiveStore.open({ url });
    opened.push(store);
    return [store, url];
  };
  const sql = async <T extends object>(url: string, text: string, params: unknown[] = []): Promise<T[]> => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      return (await client.query<T>(text, params)).rows;
    } finally {
      await client.end();
    }
  };

  it('applies each migration once, however many processes start at the same time', async () => {
    const url = await postgres.createDatabase('migrate');
    const pools = Array.from({ length: 4 }, () => new pg.Pool({ connectionString: url }));
    try {
      const versions = await Promise.all(pools.map((p) => migrate(p)));
      expect(versions).toEqual(versions.map(() => MIGRATIONS.at(-1)!.version));
      const applied = await sql<{ version: number }>(url, 'SELECT version FROM chat_schema_migrations ORDER BY version');
      expect(applied.map((r) => r.version)).toEqual(MIGRATIONS.map((m) => m.version));
    } finally {
      await Promise.all(pools.map((p) => p.end()));
    }
  });

  it('writes batches of several rooms at once, idempotently, and moves watermarks only forward', async () => {
    const [store] = await fresh();
    const t = Date.parse('2026-11-30T12:00:00Z');
    const batch = [
      { room: 'a', messages: [msg(t, 0), msg(t, 1)], through: `${t}-1`, fromStart: true },
      { room: 'b', messages: [msg(t + 5, 0)], through: `${t + 5}-0`, fromStart: false },
    ];
    expect(await store.write(batch)).toBe(3);
    expect(await store.write(batch)).toBe(0); // the same batch again: nothing new
    expect(await store.write([{ room: 'a', messages: [], through: `${t}-0`, fromStart: true }])).toBe(0); // an older mark is ignored
    expect(await store.watermarks(['a', 'b', 'c'])).toEqual(new Map([['a', `${t}-1`], ['b', `${t + 5}-0`]]));
    expect(await store.after('a', '0-0', 10)).toMatchObject({ continuous: true, more: false, through: `${t}-1` });
    expect(await store.after('b', '0-0', 10)).toMatchObject({ continuous: false, through: `${t + 5}-0` });
    expect(await store.after('a', `${t}-0`, 10)).toMatchObject({ continuous: true, messages: [msg(t, 1)] });
    expect((await store.after('a', `${t}-7`, 10)).continuous).toBe(false); // never archived
  });

  it('pages a room back across weekly partitions, in id order, before exclusive, and reads ranges after an id', async () => {
    const [store, url] = await fresh();
    const start = Date.parse('2026-10-01T00:00:00Z');
    const all = Array.from({ length: 300 }, (_, i) => msg(start + Math.floor(i / 3) * (WEEK / 20), i % 3));
    for (let i = 0; i < all.length; i += 100) {
      await store.write([{ room: 'r', messages: all.slice(i, i + 100), through: all[Math.min(i + 99, all.length - 1)]!.id, fromStart: i === 0 }]);
    }
    const partitions = await sql<{ n: string }>(url, "SELECT count(*) AS n FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'chat_messages'");
    expect(Number(partitions[0]!.n)).toBeGreaterThanOrEqual(5);
    const paged: string[] = [];
    for (let before: string | undefined; ;) {
      const page = await store.before('r', before, 50);
      if (page.length === 0) break;
      paged.unshift(...page.map((m) => m.id));
      before = page[0]!.id;
    }
    expect(paged).toEqual(all.map((m) => m.id));
    const range = await store.after('r', all[99]!.id, 150);
    expect(range.messages.map((m) => m.id)).toEqual(all.slice(100, 250).map((m) => m.id));
    expect(range.more).toBe(true);
  });

  it('answers a page with an index scan of the primary key that stops at the limit', async () => {
    const [store, url] = await fresh();
    const start = Date.parse('2026-11-02T00:00:00Z');
    for (let room = 0; room < 20; room++) {
      await store.write([{ room: `room-${room}`, messages: Array.from({ length: 500 }, (_, i) => msg(start + i * 1000, room)), through: `${start + 499_000}-${room}`, fromStart: true }]);
    }
    await sql(url, 'ANALYZE chat_messages');
    const plan = (await sql<{ 'QUERY PLAN': string }>(url,
      "EXPLAIN (ANALYZE, COSTS OFF) SELECT ms, seq, body FROM chat_messages WHERE room = 'room-7' AND (ms, seq) < ($1, 0) ORDER BY ms DESC, seq DESC LIMIT 50",
      [start + 300_000])).map((r) => r['QUERY PLAN']).join('\n');
    expect(plan).toMatch(/Index Scan Backward using \w+_pkey/);
    expect(plan).not.toMatch(/Seq Scan|Sort\b/);
    expect(plan).toMatch(/rows=50 loops=1/);
  });

  it('drops whole weekly partitions past the retention period, and nothing newer', async () => {
    const [store, url] = await fresh();
    const now = Date.parse('2026-12-01T00:00:00Z');
    const old = now - 10 * WEEK;
    await store.write([{ room: 'r', messages: [msg(old, 0), msg(now - WEEK / 2, 0), msg(now, 0)], through: `${now}-0`, fromStart: true }]);
    const cutoff = now - 4 * WEEK;
    const dropped = await store.dropBefore(cutoff);
    expect(dropped.length).toBeGreaterThanOrEqual(1);
    for (const name of dropped) expect(Date.parse(`${name.slice(-8, -4)}-${name.slice(-4, -2)}-${name.slice(-2)}T00:00:00Z`) + WEEK).toBeLessThanOrEqual(cutoff);
    const left = await sql<{ id: string }>(url, "SELECT ms || '-' || seq AS id FROM chat_messages ORDER BY ms");
    expect(left.map((r) => r.id)).toEqual([`${now - WEEK / 2}-0`, `${now}-0`]);
    expect(await store.write([{ room: 'r', messages: [msg(old, 1)], through: `${now}-0`, fromStart: true }])).toBe(1); // its week is made again if needed
  });
});
