/**
 * Streams are trimmed in batches rather than on every append: a room holds
 * between `historySize` and `historySize + batch - 1` messages.
 */
export function trimBatch(historySize: number): number {
  return Math.max(1, Math.min(100, Math.floor(historySize / 10)));
}

/** The most messages a room's stream holds (the archive's hold aside; see RedisBrokerOptions.archive). */
export function streamCapacity(historySize: number): number {
  return historySize + trimBatch(historySize) - 1;
}
