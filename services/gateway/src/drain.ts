import type { Session } from './session.js';

/** How often a drain closes its next slice of connections. */
const SLICE_MS = 10;
/** A drain takes no longer than this per connection: a few connections need no spreading. */
const MS_PER_CONNECTION = 1;

/** The time a drain of `connections` takes: `spreadMs`, or less for a few. */
export function drainWindowMs(connections: number, spreadMs: number): number {
  return Math.min(spreadMs, connections * MS_PER_CONNECTION);
}

/**
 * Closes the connections with `code` in even slices over the drain window, so
 * their clients reconnect elsewhere a few at a time instead of all at once.
 * Each slice first refuses new sends and lets the ones under way be
 * acknowledged. Resolves when every connection is closed.
 */
export async function drainSessions(sessions: Session[], spreadMs: number, code: number, reason: string): Promise<void> {
  const slices = Math.max(1, Math.ceil(drainWindowMs(sessions.length, spreadMs) / SLICE_MS));
  const perSlice = Math.ceil(sessions.length / slices);
  const closing: Promise<void>[] = [];
  for (let start = 0, slice = 0; start < sessions.length; start += perSlice, slice++) {
    if (slice > 0) await new Promise((resolve) => setTimeout(resolve, SLICE_MS));
    const batch = sessions.slice(start, start + perSlice);
    for (const session of batch) session.leaving = true;
    closing.push(Promise.all(batch.map((session) => session.settled().then(() => session.end(code, reason)))).then(() => {}));
  }
  await Promise.all(closing);
}
