import type { Cluster, Redis } from 'ioredis';
import type { RangeGap, StoredMessage } from '../broker.js';
import { rangeGap } from '../continuity.js';
import { storedEntry } from './entries.js';
import { SlotKeys } from './slot-keys.js';
import type { KeySpace } from './keys.js';
import { defineScripts, type ChatScripts } from './scripts.js';

export interface ArchiveFeedOptions {
  /** Owned by the caller, who also closes them. */
  command: Redis | Cluster;
  /** For the wake channel only (a connection in subscriber mode runs nothing else). */
  subscriber: Redis | Cluster;
  keys: KeySpace;
  /** Redis Cluster: one set of rooms to archive per slot, and SPUBLISH for loss marks. */
  sharded: boolean;
}

/** The oldest messages of a room after the archive's watermark, and whether they follow on from it. */
export interface ArchiveRead {
  messages: StoredMessage[];
  /** Why the stream cannot show that these follow the watermark with nothing between (see RangeGap). */
  gap?: RangeGap;
  /** The room's loss mark ('0-0' when none). */
  lost: string;
  /** The newest id trimmed from the stream ('0-0' when none). */
  trimmed: string;
  /** The newest id stored in the room ('0-0' when none). */
  newest: string;
}

/**
 * What an archiver needs from Redis: which rooms have messages not archived
 * yet (a set the append script adds each room to, and a wake-up when a room
 * joins it), leases so that several archivers never work on one room at once,
 * and the room's messages after a watermark. It knows streams and ids; what an
 * archive is made of is the archiver's business.
 */
export class RedisArchiveFeed {
  readonly #command: (Redis | Cluster) & ChatScripts;
  readonly #subscriber: Redis | Cluster;
  readonly #keys: KeySpace;
  readonly #sets: SlotKeys;
  readonly #publish: 'PUBLISH' | 'SPUBLISH';

  constructor(options: ArchiveFeedOptions) {
    this.#command = defineScripts(options.command);
    this.#subscriber = options.subscriber;
    this.#keys = options.keys;
    this.#sets = new SlotKeys((tag) => options.keys.archiveDirty(tag), options.sharded);
    this.#publish = options.sharded ? 'SPUBLISH' : 'PUBLISH';
  }

  /** True while commands can be served. */
  get up(): boolean {
    return this.#command.status === 'ready';
  }

  /** Calls `onRoom` with every room announced as newly dirty from now on (best effort: sweep with dirtyRooms). */
  async listen(onRoom: (room: string) => void): Promise<void> {
    const channel = this.#keys.archiveWake();
    this.#subscriber.removeAllListeners('message');
    this.#subscriber.on('message', (from: string, room: string) => {
      if (from === channel) onRoom(room);
    });
    await this.#subscriber.subscribe(channel);
  }

  /** Every room with messages not archived yet. */
  async dirtyRooms(): Promise<string[]> {
    const sets = this.#sets.all();
    const rooms = new Set<string>();
    let failed: unknown;
    for (let i = 0; i < sets.length; i += 1024) {
      const members = await Promise.allSettled(sets.slice(i, i + 1024).map((key) => this.#command.smembers(key)));
      for (const result of members) {
        if (result.status === 'fulfilled') for (const room of result.value) rooms.add(room);
        else failed = result.reason;
      }
    }
    // What could be read is worth archiving now; the caller tries the rest again soon.
    if (failed !== undefined && rooms.size === 0) throw failed;
    return [...rooms];
  }

  /**
   * Takes (or renews) the room's lease for `owner` and, when it holds it, reads
   * the oldest `limit` messages after `after` (the archive's watermark, which
   * trimming then spares) and whether the stream proves nothing lies between;
   * null when another owner holds the lease.
   */
  async claim(room: string, owner: string, leaseMs: number, after: string, limit: number): Promise<ArchiveRead | null> {
    const reply = await this.#command.chatArchiveClaim(
      this.#keys.roomArchiver(room), this.#keys.roomStream(room), this.#keys.roomTrimmed(room), this.#keys.roomLost(room),
      this.#keys.roomArchived(room), this.#keys.roomChangeMarks(room), owner, leaseMs, after, limit,
    );
    if (reply[0] === 0) return null;
    const [, trimmed, lost, newest, stored, raw] = reply;
    const messages = raw.map(([id, fields]) => storedEntry(id, fields));
    const gap = rangeGap(after, { trimmed, lost, afterStored: stored > 0 }, 0, limit);
    return gap === undefined ? { messages, lost, trimmed, newest } : { messages, gap, lost, trimmed, newest };
  }

  /**
   * Gives `owner`'s lease of the room up, and takes the room off its set when
   * nothing newer than `through` is stored (an append since re-adds it); true if it was.
   */
  async done(room: string, owner: string, through: string): Promise<boolean> {
    return (await this.#command.chatArchiveDone(
      this.#keys.roomStream(room), this.#sets.of(this.#keys.roomStream(room)), this.#keys.roomArchiver(room), this.#keys.roomArchived(room),
      through, room, owner,
    )) === 1;
  }

  /** Records that messages of the room up to `upTo` are gone unarchived (see Broker.markLost). */
  async markLost(room: string, upTo: string): Promise<void> {
    await this.#command.chatMarkLost(this.#keys.roomLost(room), upTo, this.#keys.roomChannel(room), this.#publish);
  }
}
