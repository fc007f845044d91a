/**
 * Latencies in buckets about 2% wide, from 1 µs to ~10 minutes: cheap to record,
 * and mergeable across workers by adding counts.
 */
const GROWTH = Math.log(1.02);
const BUCKETS = Math.ceil(Math.log(6e8) / GROWTH) + 1; // µs

export class Histogram {
  readonly counts: number[];
  count = 0;
  max = 0;

  constructor(counts?: number[]) {
    this.counts = counts ?? new Array<number>(BUCKETS).fill(0);
    if (counts) this.count = counts.reduce((a, b) => a + b, 0);
  }

  recordMs(ms: number): void {
    const us = Math.max(1, ms * 1000);
    this.counts[Math.min(BUCKETS - 1, Math.floor(Math.log(us) / GROWTH))]! += 1;
    this.count++;
    if (ms > this.max) this.max = ms;
  }

  merge(other: { counts: number[]; max: number }): void {
    for (let i = 0; i < BUCKETS; i++) {
      const n = other.counts[i] ?? 0;
      this.counts[i]! += n;
      this.count += n;
    }
    this.max = Math.max(this.max, other.max);
  }

  /** The q-quantile in ms (upper edge of its bucket), 0 when empty. */
  quantileMs(q: number): number {
    if (this.count === 0) return 0;
    let seen = 0;
    const target = Math.ceil(q * this.count);
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= target) return Math.min(this.max, Math.exp((i + 1) * GROWTH) / 1000);
    }
    return this.max;
  }

  toJSON(): { counts: number[]; max: number } {
    return { counts: this.counts, max: this.max };
  }
}
