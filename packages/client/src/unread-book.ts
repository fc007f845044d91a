import { compareIds, type MessageFrame, type RoomEntry, type UnreadFrame } from './protocol.js';

/** What the client knows of one of the user's members-only rooms (direct conversations among them). */
export interface RoomUnread {
  room: string;
  /** Messages after `read` by other users. */
  count: number;
  /** The user's read position in the room. */
  read: string;
  /** The room's newest message; null: it has none; absent: not known yet (only counts moved by reads were seen). */
  last?: MessageFrame | null;
  /** The other user, for a direct conversation whose partner the client has been told. */
  with?: string;
}

interface Entry extends RoomUnread {
  /** When it last changed, on the book's own clock (see `mark`). */
  stamp: number;
}

/**
 * The one owner of the unread counts the client knows: the latest state of
 * each room, from `rooms` pages and `unread` frames, and their sum.
 *
 * "Latest" by the state's own position, not by arrival: a read position only
 * moves forward and so does a room's newest message, so each part is taken
 * only when it is not behind the one kept.
 * - The count goes with the read position: it is taken with a read position
 *   ahead of the one kept, or the same one unless the state's newest message is
 *   behind the one kept. So a `rooms` page, which the gateway reads from Redis
 *   while `unread` frames travel another way, cannot put back the count of
 *   before a message whose frame came first.
 * - The newest message is taken whenever it is newer, even from a state whose
 *   count is older: the frame of a message can come after the count of a read
 *   of it on another device (on a Redis Cluster a room's channel and a user's
 *   are on different connections), and the preview should still show it.
 * States with the same position: the later one wins.
 */
export class UnreadBook {
  readonly #rooms = new Map<string, Entry>();
  /** Partners named (by `opened`) before their room's first count. */
  readonly #named = new Map<string, string>();
  #total = 0;
  #clock = 0;
  #used = false;

  /** The sum of every known room's count. */
  get total(): number {
    return this.#total;
  }

  /** Whether the application has used conversations here at all (listed, opened, read, or been told a count). */
  get used(): boolean {
    return this.#used;
  }

  use(): void {
    this.#used = true;
  }

  get(room: string): RoomUnread | undefined {
    const entry = this.#rooms.get(room);
    if (entry === undefined) return undefined;
    const { stamp: _, ...state } = entry;
    return state;
  }

  /** Every known room, newest message first (rooms whose newest message is not known last). */
  all(): RoomUnread[] {
    return [...this.#rooms.keys()].map((room) => this.get(room)!).sort(byLast);
  }

  rooms(): string[] {
    return [...this.#rooms.keys()];
  }

  /** An `unread` frame; false when all of it was older than what is kept (nothing taken). */
  takeFrame({ room, count, read, last }: UnreadFrame): boolean {
    return this.#take(room, count, read, last);
  }

  /** An entry of a `rooms` page; false when all of it was older than what is kept. */
  takeEntry({ room, unread, read, last, with: other }: RoomEntry): boolean {
    if (other !== undefined) this.name(room, other);
    return this.#take(room, unread, read, last);
  }

  /** The other user of a direct conversation (from `opened`). */
  name(room: string, other: string): void {
    const entry = this.#rooms.get(room);
    if (entry !== undefined) entry.with = other;
    else this.#named.set(room, other);
  }

  /** A change of a message (edit, delete, reaction) applied to the room's newest message, if it is the one changed. */
  change(room: string, apply: (last: MessageFrame) => MessageFrame): void {
    const entry = this.#rooms.get(room);
    if (entry?.last !== undefined && entry.last !== null) entry.last = apply(entry.last);
  }

  /** No longer one of the user's rooms. */
  forget(room: string): boolean {
    const entry = this.#rooms.get(room);
    if (entry === undefined) return false;
    this.#rooms.delete(room);
    this.#total -= entry.count;
    return true;
  }

  /** Now, on the book's clock: `changedSince(room, mark)` says whether a room's state changed after it. */
  mark(): number {
    return this.#clock;
  }

  changedSince(room: string, mark: number): boolean {
    return (this.#rooms.get(room)?.stamp ?? 0) > mark;
  }

  #take(room: string, count: number, read: string, last: MessageFrame | null | undefined): boolean {
    this.#used = true;
    const entry = this.#rooms.get(room);
    if (entry === undefined) {
      const other = this.#named.get(room);
      this.#named.delete(room);
      this.#rooms.set(room, { room, count, read, ...(last !== undefined && { last }), ...(other !== undefined && { with: other }), stamp: ++this.#clock });
      this.#total += count;
      return true;
    }
    const byRead = compareIds(read, entry.read);
    const byLast = compareLast(last, entry.last);
    const takeCount = byRead > 0 || (byRead === 0 && byLast >= 0);
    const takeLast = byLast > 0;
    if (takeCount) {
      this.#total += count - entry.count;
      entry.count = count;
      entry.read = read;
    }
    if (takeLast) entry.last = last;
    if (!takeCount && !takeLast) return false;
    entry.stamp = ++this.#clock;
    return true;
  }
}

/**
 * Newest messages compared: > 0 when `last` is newer than `kept`, 0 when it
 * says nothing newer or older (the same, or either unknown), < 0 when older.
 * null (no message yet) is older than any message.
 */
function compareLast(last: MessageFrame | null | undefined, kept: MessageFrame | null | undefined): number {
  if (last === undefined || kept === undefined) return last !== undefined && kept === undefined ? 1 : 0;
  if (last === null || kept === null) return last === kept ? 0 : last === null ? -1 : 1;
  return compareIds(last.id, kept.id);
}

/** Newest message first; ties and rooms without a known message by name, for a stable order. */
function byLast(a: RoomUnread, b: RoomUnread): number {
  const at = a.last?.ts ?? -1;
  const bt = b.last?.ts ?? -1;
  return bt - at || (a.room < b.room ? -1 : a.room > b.room ? 1 : 0);
}
