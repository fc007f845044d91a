/** A token bucket: `capacity` tokens at most, refilled continuously at `perSecond`. */
export class TokenBucket {
  readonly #capacity: number;
  readonly #perMs: number;
  #tokens: number;
  #updated: number;

  constructor(capacity: number, perSecond: number, now: number) {
    this.#capacity = capacity;
    this.#perMs = perSecond / 1000;
    this.#tokens = capacity;
    this.#updated = now;
  }

  /** Takes one token if there is one. */
  take(now: number): boolean {
    const elapsed = now > this.#updated ? now - this.#updated : 0;
    const tokens = Math.min(this.#capacity, this.#tokens + elapsed * this.#perMs);
    this.#updated = now;
    if (tokens < 1) {
      this.#tokens = tokens;
      return false;
    }
    this.#tokens = tokens - 1;
    return true;
  }
}
