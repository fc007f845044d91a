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
 * moves forward and so does a room's newest message, so a state whose read
 * position or newest message is behind the one kept is older and changes
 * nothing. That matters for a `rooms` page, which the gateway reads from Redis
 * while `unread` frames travel another way: a page read before a message
 * arrived can reach the client after that message's frame, and must not put
 * the older count back. States with the same position: the later one wins.
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

  /** An `unread` frame; false when it is older than what is kept. */
  takeFrame({ room, count, read, last }: UnreadFrame): boolean {
    return this.#take(room, count, read, last);
  }

  /** An entry of a `rooms` page; false when it is older than what is kept. */
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
    if (!notOlder(entry, read, last)) return false;
    this.#total += count - entry.count;
    entry.count = count;
    entry.read = read;
    if (last !== undefined) entry.last = last;
    entry.stamp = ++this.#clock;
    return true;
  }
}

/** Whether a state at (`read`, `last`) is at least as new as `kept`; `last` undefined says nothing of messages. */
function notOlder(kept: RoomUnread, read: string, last: MessageFrame | null | undefined): boolean {
  if (compareIds(read, kept.read) < 0) return false;
  if (last === undefined || kept.last === undefined || kept.last === null) return true;
  return last !== null && compareIds(last.id, kept.last.id) >= 0;
}

/** Newest message first; ties and rooms without a known message by name, for a stable order. */
function byLast(a: RoomUnread, b: RoomUnread): number {
  const at = a.last?.ts ?? -1;
  const bt = b.last?.ts ?? -1;
  return bt - at || (a.room < b.room ? -1 : a.room > b.room ? 1 : 0);
}
