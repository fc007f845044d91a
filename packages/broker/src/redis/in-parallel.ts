/**
 * Runs `task` over `items` with at most `concurrency` under way, so work over
 * every room or user a node holds (a resync, a withdrawal) reaches Redis as a
 * steady stream rather than one burst that stalls the appends queued behind it.
 * Resolves when every task settled; a task handles its own failure.
 */
export async function inParallel<T>(items: Iterable<T>, concurrency: number, task: (item: T) => Promise<void>): Promise<void> {
  const iterator = items[Symbol.iterator]();
  const worker = async (): Promise<void> => {
    for (let next = iterator.next(); next.done !== true; next = iterator.next()) await task(next.value);
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}
