import { compareUserIds } from '../presence.js';

/**
 * Names in id order, as Redis orders a sorted set's equal-score members, so the
 * in-process broker pages a room's users as the Redis one does. Finding a place
 * is a binary search; inserting moves the tail of one array (a memmove, cheap
 * next to anything else a join does, even at 100,000 names).
 */
export class SortedNames {
  readonly #names: string[] = [];

  get size(): number {
    return this.#names.length;
  }

  has(name: string): boolean {
    return this.#names[this.#lowerBound(name)] === name;
  }

  /** False when it was there already. */
  add(name: string): boolean {
    const at = this.#lowerBound(name);
    if (this.#names[at] === name) return false;
    this.#names.splice(at, 0, name);
    return true;
  }

  delete(name: string): boolean {
    const at = this.#lowerBound(name);
    if (this.#names[at] !== name) return false;
    this.#names.splice(at, 1);
    return true;
  }

  /** Up to `limit` names after `after` (exclusive), or from the first. */
  page(after: string | undefined, limit: number): string[] {
    let start = 0;
    if (after !== undefined) {
      start = this.#lowerBound(after);
      if (this.#names[start] === after) start++;
    }
    return this.#names.slice(start, start + limit);
  }

  /** The index of the first name not before `name`. */
  #lowerBound(name: string): number {
    let low = 0;
    let high = this.#names.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (compareUserIds(this.#names[mid]!, name) < 0) low = mid + 1;
      else high = mid;
    }
    return low;
  }
}
