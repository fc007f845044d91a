import type { RangeGap } from './broker.js';
import { MIN_STREAM_ID, compareStreamIds } from './ids.js';

/** What a room's stream knows about its own past, read atomically with a range. */
export interface StreamBounds {
  /** The newest id trimmed from the stream ('0-0' when none). */
  trimmed: string;
  /** The newest id marked lost ('0-0' when none). */
  lost: string;
  /** Whether the id the range starts after is itself stored. */
  afterStored: boolean;
}

/**
 * Whether the stream proves that no message after `after` is missing from a
 * range holding `newer` messages, with room for `limit`. The id must be stored,
 * or be a point the stream is known to continue from: the newest trimmed id, or
 * '0-0' (a room's beginning). An id the stream no longer holds proves nothing:
 * after a restart or a failover the stream may have lost it and its successors.
 */
export function rangeGap(after: string, bounds: StreamBounds, newer: number, limit: number): RangeGap | undefined {
  if (compareStreamIds(after, bounds.trimmed) < 0) return 'trimmed';
  if (!bounds.afterStored && after !== bounds.trimmed && after !== MIN_STREAM_ID) return 'unproven';
  if (newer > limit) return 'limit';
  if (compareStreamIds(after, bounds.lost) < 0) return 'lost';
  return undefined;
}
