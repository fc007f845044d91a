import pg from 'pg';
import { joinId, splitId } from './ids.js';
import { ConversationStore } from './conversation-store.js';
import { applyChange, reactionsOf, tombstoneBody, type ArchivedChange } from './message-changes.js';
import { migrate } from './migrate.js';
import { nextWeek, partitionName, weeksBetween } from './partitions.js';

/**
 * A room message as archived: its id and the stored frame tail (the frame is
 * head + id + body). In a batch to write, an entry may also be a change of a
 * message (an edit, a delete, a reaction), which is applied, not stored.
 */
export interface ArchivedMessage {
  id: string;
  body: string;
  /** Its number in a members-only room (see the broker's conversation scripts). */
  number?: number;
  /** Set on a change entry of a batch (never on what pages return). */
  change?: ArchivedChange;
}

/** Entries of one room to archive (messages and changes, in stream order), and the id the room is archived through once they are in. */
export interface ArchiveBatch {
  room: string;
  messages: ArchivedMessage[];
  through: string;
  /** True when the room's archive starts here at the room's first message. */
  fromStart: boolean;
}

/** What the archive holds after an id. */
export interface ArchiveRange {
  /** Oldest first, at most `limit`. */
  messages: ArchivedMessage[];
  /** More than `limit` messages came after the id. */
  more: boolean;
  /** The archive can vouch for continuity from the id: it holds the id itself, or it is 0-0 and the archive starts at the room's start. */
  continuous: boolean;
  /** The room is archived through this id (undefined: nothing archived yet). */
  through: string | undefined;
}

export interface ArchiveStoreOptions {
  /** postgres://... */
  url: string;
  /** Pool size (default 10). */
  max?: number;
  /** Each statement's limit, so a stuck database fails calls instead of hanging them (default 5 s). */
  statementTimeoutMs?: number;
  /** Errors of idle pooled connections (a restart of PostgreSQL): logged, the pool makes new ones. */
  onPoolError?: (err: Error) => void;
}

type Row = { ms: string; seq: string; body: string };

/** PostgreSQL could not answer (down, restarting, too slow); retrying later may work. */
export class ArchiveUnavailableError extends Error {
  override readonly name = 'ArchiveUnavailableError';
}

async function reading<T>(what: string, query: () => Promise<T>): Promise<T> {
  try {
    return await query();
  } catch (err) {
    throw new ArchiveUnavailableError(`archive ${what} failed: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * The PostgreSQL archive of room messages (node-postgres, one pool). Writes are
 * idempotent, keyed by (room, id): a batch written twice (a crash between the
 * write and its acknowledgement) changes nothing the second time.
 */
export class ArchiveStore {
  readonly #pool: pg.Pool;
  /** Week starts whose partition exists (or was just made by this process). */
  readonly #weeks = new Set<number>();

  /** Members-only rooms' members and read positions, in the same database. */
  readonly conversations: ConversationStore;

  private constructor(pool: pg.Pool) {
    this.#pool = pool;
    this.conversations = new ConversationStore(pool);
  }

  /** A pool; nothing is connected until the first query (PostgreSQL may come later). */
  static connect(options: ArchiveStoreOptions): ArchiveStore {
    const pool = new pg.Pool({
      connectionString: options.url, max: options.max ?? 10,
      statement_timeout: options.statementTimeoutMs ?? 5000, connectionTimeoutMillis: options.statementTimeoutMs ?? 5000,
    });
    pool.on('error', (err) => options.onPoolError?.(err));
    return new ArchiveStore(pool);
  }

  /** Connects and brings the schema up to date. */
  static async open(options: ArchiveStoreOptions): Promise<ArchiveStore> {
    const store = ArchiveStore.connect(options);
    try {
      await store.migrate();
    } catch (err) {
      await store.close();
      throw err;
    }
    return store;
  }

  /** Applies the migrations not applied yet (once, under a lock, whoever runs it); resolves with the schema version. */
  migrate(): Promise<number> {
    return migrate(this.#pool);
  }

  /**
   * Like migrate, retried with backoff (doubling up to maxDelayMs) until
   * PostgreSQL answers: a process may start before its database.
   */
  async migrateWhenReachable(onRetry: (err: unknown, retryInMs: number) => void, maxDelayMs = 10_000): Promise<number> {
    for (let delayMs = 500; ; delayMs = Math.min(delayMs * 2, maxDelayMs)) {
      try {
        return await this.migrate();
      } catch (err) {
        onRetry(err, delayMs);
        await new Promise((resolve) => setTimeout(resolve, delayMs));
      }
    }
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }

  /** When the archive began (its schema was made), ms since the epoch: every message since should be in it. */
  async startedAt(): Promise<number> {
    const { rows } = await this.#pool.query<{ ms: string }>(
      'SELECT (extract(epoch FROM applied_at) * 1000)::bigint AS ms FROM chat_schema_migrations WHERE version = 1');
    return Number(rows[0]?.ms ?? 0);
  }

  /** True when a trivial query answers. */
  async ping(): Promise<boolean> {
    try {
      await this.#pool.query('SELECT 1');
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Inserts the messages of several rooms, applies their changes in stream
   * order, and moves each room's watermark to `through`, in one transaction.
   * Rows already there are left alone (a tombstone stays one). Without changes
   * it is one statement for all rows. Resolves with the number of new rows.
   */
  async write(batches: readonly ArchiveBatch[]): Promise<number> {
    const changes = batches.flatMap((b) => b.messages.filter((m) => m.change !== undefined).map((m) => ({ room: b.room, entry: m })));
    if (changes.length === 0) return this.#insert(this.#pool, batches);
    const targets = changes.map(({ entry }) => Number(splitId(entry.change!.target)[0]));
    await this.ensureWeeks(Math.min(...targets), Math.max(...targets));
    return this.#transaction(async (client) => {
      const inserted = await this.#insert(client, batches.map((b) => ({ ...b, messages: b.messages.filter((m) => m.change === undefined) })));
      for (const { room, entry } of changes) await applyChange(client, room, entry.body, entry.change!);
      return inserted;
    });
  }

  /**
   * Every message of `user` still holding text (in `room`, or every room)
   * becomes a tombstone, with its reactions gone; resolves with how many.
   */
  async eraseUser(user: string, room?: string): Promise<number> {
    const prefix = `","user":${JSON.stringify(user)},`;
    return this.#transaction(async (client) => {
      const { rows } = await client.query<{ room: string; ms: string; seq: string }>(
        `UPDATE chat_messages SET deleted = true,
           body = '","user":' || $2 || ',"text":"","ts":' || substring(body from ',"ts":([0-9]+)') || ',"deleted":true}'
         WHERE starts_with(body, $1) AND NOT deleted AND ($3::text IS NULL OR room = $3) RETURNING room, ms, seq`,
        [prefix, JSON.stringify(user), room ?? null]);
      if (rows.length > 0) {
        await client.query('DELETE FROM chat_reactions WHERE (room, ms, seq) IN (SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[]))',
          [rows.map((r) => r.room), rows.map((r) => r.ms), rows.map((r) => r.seq)]);
      }
      return rows.length;
    });
  }

  /**
   * Tombstones for these messages of a room, whether or not they are archived
   * yet: an archiver writing one of them later leaves the tombstone.
   */
  async tombstone(room: string, messages: ReadonlyArray<{ id: string; author: string; sentAt: number }>): Promise<void> {
    if (messages.length === 0) return;
    const ids = messages.map((m) => splitId(m.id));
    await this.ensureWeeks(Math.min(...ids.map(([ms]) => Number(ms))), Math.max(...ids.map(([ms]) => Number(ms))));
    await this.#pool.query(
      `INSERT INTO chat_messages (room, ms, seq, body, deleted)
       SELECT $1, * , true FROM unnest($2::bigint[], $3::bigint[], $4::text[])
       ON CONFLICT (room, ms, seq) DO UPDATE SET body = EXCLUDED.body, deleted = true`,
      [room, ids.map(([ms]) => ms), ids.map(([, seq]) => seq), messages.map((m) => tombstoneBody(m.author, m.sentAt))]);
    await this.#pool.query('DELETE FROM chat_reactions WHERE room = $1 AND (ms, seq) IN (SELECT * FROM unnest($2::bigint[], $3::bigint[]))',
      [room, ids.map(([ms]) => ms), ids.map(([, seq]) => seq)]);
  }

  /** The rows and the watermarks of `batches` (messages only), in one statement. */
  async #insert(db: pg.Pool | pg.PoolClient, batches: readonly ArchiveBatch[]): Promise<number> {
    const rooms: string[] = [];
    const ms: string[] = [];
    const seq: string[] = [];
    const bodies: string[] = [];
    const numbers: Array<number | null> = [];
    let lowest = Number.POSITIVE_INFINITY;
    let highest = 0;
    for (const batch of batches) {
      for (const m of batch.messages) {
        const [a, b] = splitId(m.id);
        rooms.push(batch.room);
        ms.push(a);
        seq.push(b);
        bodies.push(m.body);
        numbers.push(m.number ?? null);
        lowest = Math.min(lowest, Number(a));
        highest = Math.max(highest, Number(a));
      }
    }
    if (rooms.length > 0) await this.ensureWeeks(lowest, highest);
    const marks = batches.map((b) => splitId(b.through));
    // One statement, so one round trip and its own transaction: the rows and the watermarks together.
    const { rows: [result] } = await db.query<{ inserted: string }>(
      `WITH rows AS (
         INSERT INTO chat_messages (room, ms, seq, body, number)
         SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $9::bigint[])
         ON CONFLICT DO NOTHING RETURNING 1),
       marks AS (
         INSERT INTO chat_archive_rooms (room, ms, seq, from_start)
         SELECT * FROM unnest($5::text[], $6::bigint[], $7::bigint[], $8::boolean[])
         ON CONFLICT (room) DO UPDATE SET ms = EXCLUDED.ms, seq = EXCLUDED.seq, updated_at = now()
         WHERE (chat_archive_rooms.ms, chat_archive_rooms.seq) < (EXCLUDED.ms, EXCLUDED.seq) RETURNING 1)
       SELECT (SELECT count(*) FROM rows) AS inserted, (SELECT count(*) FROM marks) AS marked`,
      [rooms, ms, seq, bodies, batches.map((b) => b.room), marks.map(([a]) => a), marks.map(([, b]) => b), batches.map((b) => b.fromStart), numbers]);
    return Number(result!.inserted);
  }

  /** room -> the id it is archived through, for those archived at all. */
  async watermarks(rooms: readonly string[]): Promise<Map<string, string>> {
    const { rows } = await this.#pool.query<{ room: string; ms: string; seq: string }>(
      'SELECT room, ms, seq FROM chat_archive_rooms WHERE room = ANY($1::text[])', [rooms]);
    return new Map(rows.map((r) => [r.room, joinId(r.ms, r.seq)]));
  }

  /**
   * Up to `limit` archived messages older than `before` (the newest when absent), oldest first,
   * in their current version: with their reactions, and with a `reader` the reader's own.
   */
  async before(room: string, before: string | undefined, limit: number, reader?: string): Promise<ArchivedMessage[]> {
    const { rows } = await reading('page', () => (before === undefined
      ? this.#pool.query<Row>('SELECT ms, seq, body FROM chat_messages WHERE room = $1 ORDER BY ms DESC, seq DESC LIMIT $2', [room, limit])
      : this.#pool.query<Row>(
        'SELECT ms, seq, body FROM chat_messages WHERE room = $1 AND (ms, seq) < ($2, $3) ORDER BY ms DESC, seq DESC LIMIT $4',
        [room, ...splitId(before), limit])));
    return this.#withReactions(room, rows.reverse().map(toMessage), reader);
  }

  /** Splices each message's reactions into its body (one query for the page). */
  async #withReactions(room: string, messages: ArchivedMessage[], reader: string | undefined): Promise<ArchivedMessage[]> {
    const reactions = await reading('reactions', () => reactionsOf(this.#pool, room, messages.map((m) => m.id), reader));
    if (reactions.size === 0) return messages;
    return messages.map((m) => {
      const extra = reactions.get(m.id);
      return extra === undefined ? m : { ...m, body: m.body.slice(0, -1) + extra + '}' };
    });
  }

  /** The archived messages after `since` (the oldest `limit` of them), and whether the archive can vouch for them. */
  async after(room: string, since: string, limit: number): Promise<ArchiveRange> {
    const [ms, seq] = splitId(since);
    const [range, state] = await reading('range', () => Promise.all([
      this.#pool.query<Row>(
        'SELECT ms, seq, body FROM chat_messages WHERE room = $1 AND (ms, seq) > ($2, $3) ORDER BY ms, seq LIMIT $4',
        [room, ms, seq, limit + 1]),
      this.#pool.query<{ through: string | null; from_start: boolean | null; stored: boolean }>(
        `SELECT (SELECT ms || '-' || seq FROM chat_archive_rooms WHERE room = $1) AS through,
                (SELECT from_start FROM chat_archive_rooms WHERE room = $1) AS from_start,
                EXISTS (SELECT 1 FROM chat_messages WHERE room = $1 AND ms = $2 AND seq = $3) AS stored`,
        [room, ms, seq]),
    ]));
    const { through, from_start: fromStart, stored } = state.rows[0]!;
    return {
      messages: await this.#withReactions(room, range.rows.slice(0, limit).map(toMessage), undefined),
      more: range.rows.length > limit,
      continuous: stored || (since === '0-0' && fromStart === true),
      through: through ?? undefined,
    };
  }

  /** Makes the weekly partitions covering [fromMs, toMs] that do not exist yet. */
  async ensureWeeks(fromMs: number, toMs: number): Promise<void> {
    const missing = weeksBetween(fromMs, toMs).filter((w) => !this.#weeks.has(w));
    if (missing.length === 0) return;
    await this.#transaction(async (client) => {
      // Serializes partition DDL between processes: CREATE ... IF NOT EXISTS alone can race.
      await client.query('SELECT pg_advisory_xact_lock(727002)');
      for (const start of missing) {
        await client.query(`CREATE TABLE IF NOT EXISTS ${partitionName(start)} PARTITION OF chat_messages FOR VALUES FROM (${start}) TO (${nextWeek(start)})`);
      }
    });
    for (const start of missing) this.#weeks.add(start);
  }

  /**
   * Runs `work` in a transaction on a client of its own. A connection that breaks
   * meanwhile (PostgreSQL restarting) fails the work, never the process: a checked-out
   * client's 'error' event has no other listener, and the broken client is discarded.
   */
  async #transaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.#pool.connect();
    let broken: Error | undefined;
    const onError = (err: Error): void => {
      broken = err;
    };
    client.on('error', onError);
    try {
      await client.query('BEGIN');
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      broken ??= err as Error;
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      client.off('error', onError);
      client.release(broken);
    }
  }

  /** Drops the weekly partitions that end before `ms` (retention); resolves with their names. */
  async dropBefore(ms: number): Promise<string[]> {
    const { rows } = await this.#pool.query<{ name: string }>(
      `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
       JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'chat_messages'`);
    const dropped: string[] = [];
    for (const { name } of rows) {
      const start = Date.parse(`${name.slice('chat_messages_w'.length, -4)}-${name.slice(-4, -2)}-${name.slice(-2)}T00:00:00Z`);
      if (!Number.isFinite(start) || nextWeek(start) > ms) continue;
      await this.#pool.query(`DROP TABLE IF EXISTS ${name}`);
      await this.#pool.query('DELETE FROM chat_reactions WHERE ms >= $1 AND ms < $2', [start, nextWeek(start)]);
      this.#weeks.delete(start);
      dropped.push(name);
    }
    return dropped;
  }
}

function toMessage(row: Row): ArchivedMessage {
  return { id: joinId(row.ms, row.seq), body: row.body };
}


