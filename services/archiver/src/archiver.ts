import type { ArchiveBatch, ArchiveStore } from '@chat/archive';
import type { ArchiveRead, RedisArchiveFeed } from '@chat/broker';
import type { Logger } from 'pino';
import type { ArchiverConfig } from './config.js';
import type { ArchiverMetrics } from './metrics.js';

type Feed = Pick<RedisArchiveFeed, 'up' | 'listen' | 'dirtyRooms' | 'lease' | 'release' | 'read' | 'settle' | 'markLost'>;
type Store = Pick<ArchiveStore, 'watermarks' | 'write' | 'dropBefore' | 'ping' | 'startedAt'>;

export interface ArchiverDeps {
  config: Pick<ArchiverConfig, 'nodeId' | 'batchSize' | 'roomsPerCycle' | 'cycleMs' | 'sweepMs' | 'leaseMs' | 'retentionDays'>;
  feed: Feed;
  store: Store;
  metrics: ArchiverMetrics;
  log: Logger;
}

/** One room in a cycle: what was read after its watermark. */
interface RoomWork {
  room: string;
  through: string | undefined;
  read: ArchiveRead;
}

const HOUR_MS = 3600 * 1000;

/**
 * Moves every acknowledged room message from Redis into PostgreSQL, once, in
 * id order per room. Rooms with messages not archived yet sit in Redis sets
 * the append script writes; a wake-up on a channel, and a sweep of the sets,
 * bring them here. Each cycle leases a number of rooms (several archivers
 * share the work room by room; a dead one's leases expire), reads each past
 * its watermark, and writes them all in one transaction, watermarks included:
 * a crash before the commit leaves nothing, a crash after it only repeats rows
 * the primary key turns away. A watermark the stream can no longer vouch for
 * means messages vanished before they were archived: that is recorded as a
 * loss mark, never skipped over quietly.
 */
export class Archiver {
  readonly #deps: ArchiverDeps;
  /** Rooms to look at, in arrival order. */
  readonly #queue = new Set<string>();
  /** room -> ms of its oldest message read but not written yet: what the lag is measured from. */
  readonly #pendingSince = new Map<string, number>();
  /** room -> the watermark last seen, to measure the lag from while PostgreSQL cannot say. */
  readonly #lastThrough = new Map<string, string>();
  #timers: NodeJS.Timeout[] = [];
  #cycle: Promise<void> | undefined;
  #stopped = false;
  #failures = 0;
  #databaseUp = true;
  /** When the archive began: a room trimmed past a message younger than that lost it unarchived. */
  #archiveStart = Number.POSITIVE_INFINITY;

  constructor(deps: ArchiverDeps) {
    this.#deps = deps;
  }

  get lagSeconds(): number {
    let oldest = Number.POSITIVE_INFINITY;
    for (const ms of this.#pendingSince.values()) oldest = Math.min(oldest, ms);
    return oldest === Number.POSITIVE_INFINITY ? 0 : Math.max(0, (Date.now() - oldest) / 1000);
  }

  get pendingRooms(): number {
    return new Set([...this.#queue, ...this.#pendingSince.keys()]).size;
  }

  get databaseUp(): boolean {
    return this.#databaseUp;
  }

  async start(): Promise<void> {
    const { feed, store, config, log } = this.#deps;
    this.#archiveStart = await store.startedAt();
    await feed.listen((room) => this.#enqueue(room)).catch((err: unknown) => log.warn({ err }, 'no wake-ups: relying on the sweep'));
    this.#every(config.sweepMs, () => this.#sweep());
    this.#every(Math.min(config.sweepMs, 2000), () => this.#checkDatabase());
    if (config.retentionDays > 0) this.#every(HOUR_MS, () => this.#retain());
    void this.#sweep();
    if (config.retentionDays > 0) void this.#retain();
    this.#schedule(0);
  }

  /** Stops taking work and waits for the cycle in progress. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const timer of this.#timers) clearInterval(timer);
    await this.#cycle;
  }

  #enqueue(room: string): void {
    this.#queue.add(room);
  }

  async #sweep(): Promise<void> {
    try {
      for (const room of await this.#deps.feed.dirtyRooms()) this.#enqueue(room);
    } catch (err) {
      this.#deps.log.debug({ err }, 'sweep failed');
    }
  }

  /** Readiness follows PostgreSQL even while there is nothing to write. */
  async #checkDatabase(): Promise<void> {
    this.#databaseUp = await this.#deps.store.ping();
  }

  async #retain(): Promise<void> {
    const { store, config, log } = this.#deps;
    try {
      const dropped = await store.dropBefore(Date.now() - config.retentionDays * 24 * HOUR_MS);
      if (dropped.length > 0) log.info({ dropped }, 'dropped archive partitions past the retention period');
    } catch (err) {
      log.warn({ err }, 'retention failed; retrying in an hour');
    }
  }

  /** The next cycle: at once while there is more to do, after a pause when idle, later and later while failing. */
  #schedule(delayMs: number): void {
    if (this.#stopped) return;
    const timer = setTimeout(() => {
      this.#cycle = this.#runCycle().then((busy) => {
        const { cycleMs } = this.#deps.config;
        this.#schedule(this.#failures > 0 ? Math.min(5000, cycleMs * 2 ** this.#failures) : busy ? 0 : cycleMs);
      });
    }, delayMs);
    timer.unref?.();
  }

  /** Resolves true when it had work to do. */
  async #runCycle(): Promise<boolean> {
    const { config, feed } = this.#deps;
    if (this.#queue.size === 0 || !feed.up) return false;
    const rooms = [...this.#queue].slice(0, config.roomsPerCycle);
    for (const room of rooms) this.#queue.delete(room);
    const leased: string[] = [];
    await Promise.all(rooms.map(async (room) => {
      if (await feed.lease(room, config.nodeId, config.leaseMs).catch(() => false)) leased.push(room);
      else this.#pendingSince.delete(room); // another archiver has it: its lag is that one's to report
    }));
    try {
      await this.#archive(leased);
      this.#failures = 0;
    } catch (err) {
      this.#failures++;
      for (const room of leased) this.#enqueue(room);
      this.#deps.log.warn({ err, rooms: leased.length, failures: this.#failures }, 'archive cycle failed; retrying');
    } finally {
      await Promise.all(leased.map((room) => feed.release(room, config.nodeId).catch(() => {})));
    }
    return true;
  }

  async #archive(rooms: string[]): Promise<void> {
    if (rooms.length === 0) return;
    const { feed, store, config, metrics } = this.#deps;
    let watermarks: Map<string, string>;
    try {
      watermarks = await this.#watermarks(rooms);
    } catch (err) {
      await this.#notePending(rooms);
      throw err;
    }
    const work: RoomWork[] = await Promise.all(rooms.map(async (room) => {
      const through = watermarks.get(room);
      return { room, through, read: await feed.read(room, through ?? '0-0', config.batchSize) };
    }));
    for (const w of work) await this.#checkContinuity(w);
    const batches: ArchiveBatch[] = work.filter((w) => w.read.messages.length > 0).map(({ room, through, read }) => ({
      room, messages: read.messages, through: read.messages.at(-1)!.id,
      // No watermark yet: this is the room's first archiving; it starts at the room's beginning unless trimmed past it.
      fromStart: through === undefined && read.gap !== 'trimmed',
    }));
    for (const b of batches) if (!this.#pendingSince.has(b.room)) this.#pendingSince.set(b.room, Number(b.messages[0]!.id.split('-')[0]));
    if (batches.length > 0) {
      const timer = metrics.batchSeconds.startTimer();
      try {
        metrics.rows.inc(await store.write(batches));
        this.#databaseUp = true;
      } catch (err) {
        metrics.writeErrors.inc();
        this.#databaseUp = false;
        throw err;
      } finally {
        timer();
      }
    }
    for (const { room, read, through } of work) {
      this.#pendingSince.delete(room);
      const upTo = read.messages.at(-1)?.id ?? through ?? '0-0';
      this.#lastThrough.set(room, upTo);
      // A full batch means more is waiting; otherwise the room is done unless messages came meanwhile.
      if (read.messages.length >= config.batchSize || !(await feed.settle(room, upTo))) this.#enqueue(room);
    }
  }

  /** While the archive cannot be read: when did the oldest message waiting in each room arrive. */
  async #notePending(rooms: string[]): Promise<void> {
    await Promise.all(rooms.filter((room) => !this.#pendingSince.has(room)).map(async (room) => {
      const read = await this.#deps.feed.read(room, this.#lastThrough.get(room) ?? '0-0', 1).catch(() => undefined);
      const first = read?.messages[0]?.id;
      if (first !== undefined) this.#pendingSince.set(room, Number(first.split('-')[0]));
    }));
  }

  async #watermarks(rooms: string[]): Promise<Map<string, string>> {
    try {
      const marks = await this.#deps.store.watermarks(rooms);
      this.#databaseUp = true;
      return marks;
    } catch (err) {
      this.#databaseUp = false;
      this.#deps.metrics.writeErrors.inc();
      throw err;
    }
  }

  /**
   * Messages after the watermark that the stream no longer holds (trimmed
   * before this archiver got to them, or gone with a Redis restart or
   * failover) will never be archived: marked as lost up to the first message
   * that is there, so no rejoin from before it is told it missed nothing.
   */
  async #checkContinuity({ room, through, read }: RoomWork): Promise<void> {
    if (read.gap !== 'trimmed' && read.gap !== 'unproven') return;
    // A room never archived, trimmed before the archive began: its archive just starts later.
    if (through === undefined && Number(read.trimmed.split('-')[0]) < this.#archiveStart) return;
    const first = read.messages[0]?.id;
    if (first === undefined) return; // nothing stored after it yet: the next message decides
    this.#deps.metrics.losses.inc();
    this.#deps.log.warn({ room, archivedThrough: through, firstStored: first, why: read.gap }, 'messages vanished before they were archived; marking the loss');
    await this.#deps.feed.markLost(room, first);
  }

  #every(ms: number, task: () => Promise<void>): void {
    const timer = setInterval(() => void task(), ms);
    timer.unref();
    this.#timers.push(timer);
  }
}
