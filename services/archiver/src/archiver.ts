import type { ArchiveBatch, ArchiveStore } from '@chat/archive';
import type { ArchiveRead, RedisArchiveFeed } from '@chat/broker';
import type { Logger } from 'pino';
import type { ArchiverConfig } from './config.js';
import type { ArchiverMetrics } from './metrics.js';

type Feed = Pick<RedisArchiveFeed, 'up' | 'listen' | 'dirtyRooms' | 'claim' | 'done' | 'markLost'>;
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
  /**
   * room -> its watermark as this archiver last wrote or read it (undefined: never
   * archived). It can only be older than the truth (another archiver may have
   * moved it since), which merely re-reads rows the primary key turns away; a gap
   * seen from a cached one is checked against PostgreSQL before it counts as a loss.
   */
  readonly #through = new Map<string, string | undefined>();
  #timers: NodeJS.Timeout[] = [];
  #cycle: Promise<void> | undefined;
  #stopped = false;
  #failures = 0;
  #databaseUp = true;
  #listening = false;
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

  /** Wake-ups arrive: a room is archived as soon as it has messages, not at the next sweep. */
  get listening(): boolean {
    return this.#listening;
  }

  async start(): Promise<void> {
    const { store, config } = this.#deps;
    this.#archiveStart = await store.startedAt();
    void this.#listen(250);
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

  /** Wake-ups, retried until Redis takes the subscription (it may not be up when the archiver starts). */
  async #listen(delayMs: number): Promise<void> {
    try {
      await this.#deps.feed.listen((room) => this.#enqueue(room));
      this.#listening = true;
    } catch (err) {
      if (this.#stopped) return;
      this.#deps.log.warn({ err, retryInMs: delayMs }, 'no wake-ups yet: relying on the sweep');
      setTimeout(() => void this.#listen(Math.min(delayMs * 2, 5000)), delayMs).unref();
    }
  }

  /** Every room of every set; a sweep that fails is tried again soon rather than at the next period. */
  async #sweep(): Promise<void> {
    try {
      for (const room of await this.#deps.feed.dirtyRooms()) this.#enqueue(room);
    } catch (err) {
      this.#deps.log.debug({ err }, 'sweep failed; again in 500 ms');
      if (!this.#stopped) setTimeout(() => void this.#sweep(), 500).unref();
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

  /**
   * One cycle: claims the rooms (lease and read, one Redis call each), writes
   * what they hold in one PostgreSQL statement, and hands them back (settle and
   * release, one call each). Resolves true when it had work to do.
   */
  async #runCycle(): Promise<boolean> {
    const { config, log } = this.#deps;
    if (this.#queue.size === 0 || !this.#deps.feed.up) return false;
    const rooms = [...this.#queue].slice(0, config.roomsPerCycle);
    for (const room of rooms) this.#queue.delete(room);
    let claimed: RoomWork[] = [];
    try {
      await this.#learnWatermarks(rooms);
      claimed = await this.#claim(rooms);
      await this.#archive(claimed);
      this.#failures = 0;
    } catch (err) {
      this.#failures++;
      for (const room of rooms) this.#enqueue(room);
      log.warn({ err, rooms: rooms.length, failures: this.#failures }, 'archive cycle failed; retrying');
      // Leases go back; nothing newer than what was stored before is claimed archived.
      await Promise.all(claimed.map(({ room, through }) => this.#deps.feed.done(room, config.nodeId, through ?? '0-0').catch(() => false)));
    }
    return true;
  }

  /** The watermarks of rooms this archiver knows nothing of yet, from PostgreSQL. */
  async #learnWatermarks(rooms: string[]): Promise<void> {
    const unknown = rooms.filter((room) => !this.#through.has(room));
    if (unknown.length === 0) return;
    try {
      const marks = await this.#deps.store.watermarks(unknown);
      this.#databaseUp = true;
      for (const room of unknown) this.#through.set(room, marks.get(room));
    } catch (err) {
      this.#databaseUp = false;
      this.#deps.metrics.writeErrors.inc();
      await this.#notePending(unknown);
      throw err;
    }
  }

  /** Leases and reads each room; a room leased by another archiver is that one's (and so is its lag). */
  async #claim(rooms: string[]): Promise<RoomWork[]> {
    const { feed, config } = this.#deps;
    const work: RoomWork[] = [];
    await Promise.all(rooms.map(async (room) => {
      const through = this.#through.get(room);
      const read = await feed.claim(room, config.nodeId, config.leaseMs, through ?? '0-0', config.batchSize).catch(() => undefined);
      if (read === undefined) return this.#enqueue(room); // Redis trouble: next cycle
      if (read !== null) {
        work.push({ room, through, read });
        return;
      }
      this.#pendingSince.delete(room);
      this.#through.delete(room); // it will move on without us
    }));
    return work;
  }

  async #archive(claimed: RoomWork[]): Promise<void> {
    const { feed, store, config, metrics } = this.#deps;
    const work: RoomWork[] = [];
    for (const w of claimed) {
      if (w.read.gap === 'trimmed' || w.read.gap === 'unproven') {
        // Maybe only our cached watermark is behind: ask PostgreSQL before calling it a loss.
        const truth = (await store.watermarks([w.room])).get(w.room);
        if (truth !== w.through) {
          this.#through.set(w.room, truth);
          this.#enqueue(w.room);
          await feed.done(w.room, config.nodeId, '0-0');
          continue;
        }
        await this.#markLoss(w);
      }
      work.push(w);
    }
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
    await Promise.all(work.map(async ({ room, read, through }) => {
      this.#pendingSince.delete(room);
      const upTo = read.messages.at(-1)?.id ?? through;
      this.#through.set(room, upTo);
      const settled = await feed.done(room, config.nodeId, upTo ?? '0-0');
      // A full batch means more is waiting; otherwise the room is done unless messages came meanwhile.
      if (read.messages.length >= config.batchSize || !settled) this.#enqueue(room);
    }));
  }

  /** While the archive cannot say where rooms stand: when did the oldest message waiting in each arrive. */
  async #notePending(rooms: string[]): Promise<void> {
    const { feed, config } = this.#deps;
    await Promise.all(rooms.filter((room) => !this.#pendingSince.has(room)).map(async (room) => {
      const read = await feed.claim(room, config.nodeId, config.leaseMs, '0-0', 1).catch(() => null);
      if (read === null) return;
      await feed.done(room, config.nodeId, '0-0').catch(() => false);
      const first = read.messages[0]?.id;
      if (first !== undefined) this.#pendingSince.set(room, Number(first.split('-')[0]));
    }));
  }

  /**
   * Messages after the watermark that the stream no longer holds (trimmed
   * before this archiver got to them, or gone with a Redis restart or
   * failover) will never be archived: marked as lost up to the first message
   * that is there, so no rejoin from before it is told it missed nothing.
   */
  async #markLoss({ room, through, read }: RoomWork): Promise<void> {
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
