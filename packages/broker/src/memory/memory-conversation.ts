import type { StoredMessage } from '../broker.js';
import { compareStreamIds } from '../ids.js';
import type { ReadPosition } from '../read-positions.js';
import { SortedNames } from './sorted-names.js';

let lastMicroseconds = 0;

/** Now in microseconds, never the same twice in this process. */
function microseconds(): number {
  lastMicroseconds = Math.max(lastMicroseconds + 1, Math.floor((performance.timeOrigin + performance.now()) * 1000));
  return lastMicroseconds;
}

/**
 * A members-only room's stored state in the in-process broker, as the Redis
 * scripts keep it (see redis/conversation-scripts.ts): the members, their read
 * positions, and the room's message number.
 */
export class MemoryConversation {
  readonly members = new SortedNames();
  readonly reads = new Map<string, ReadPosition>();
  /** Messages posted since the room became members-only. */
  total = 0;
  /** When the newest message was posted, in microseconds; strictly increasing across the hub's rooms. */
  lastAt = 0;
  /** "a|b" for a direct conversation. */
  pair: string | undefined;
  /** message id -> its number, for the messages the room stores. */
  readonly numbers = new Map<string, number>();
  /** Numbers of deleted messages: no unread count includes them. */
  readonly deleted = new Set<number>();

  /** The numbers of deleted messages after `number`, ascending. */
  deletedAfter(number: number): number[] {
    return [...this.deleted].filter((n) => n > number).sort((a, b) => a - b);
  }

  /**
   * The number of the newest message at or before `id` among `stored`. An id
   * older than everything stored counts as the oldest stored message's
   * predecessor (what is trimmed can be shown to nobody).
   */
  numberAt(id: string, stored: readonly StoredMessage[]): number {
    for (let i = stored.length - 1; i >= 0; i--) {
      if (stored[i]!.change === undefined && compareStreamIds(stored[i]!.id, id) <= 0) return this.numbers.get(stored[i]!.id) ?? 0;
    }
    const oldest = stored.find((m) => m.change === undefined);
    if (oldest === undefined) return this.total;
    return Math.max(0, (this.numbers.get(oldest.id) ?? 1) - 1);
  }

  /** Adds a member whose read position is the newest stored message; false when already one. */
  admit(user: string, newest: string): boolean {
    if (!this.members.add(user)) return false;
    this.reads.set(user, { id: newest, number: this.total });
    return true;
  }

  /** Records a member's message: the next number, and their read position moves to it. */
  count(id: string, user: string): number {
    const number = ++this.total;
    this.numbers.set(id, number);
    this.lastAt = microseconds();
    this.reads.set(user, { id, number });
    return number;
  }
}
