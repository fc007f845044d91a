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
 * Closes the connections with `code` evenly over the drain window, so their
 * clients reconnect elsewhere a few at a time instead of all at once. The pace
 * follows the clock, not a count of timer ticks, so a busy event loop does not
 * stretch the window. Each connection first refuses new sends and lets the ones
 * under way be acknowledged. Resolves when every connection is closed.
 */
export async function drainSessions(sessions: Session[], spreadMs: number, code: number, reason: string): Promise<void> {
  const windowMs = drainWindowMs(sessions.length, spreadMs);
  const startedAt = Date.now();
  const closing: Promise<void>[] = [];
  for (let closed = 0; closed < sessions.length;) {
    const due = windowMs === 0 ? sessions.length : Math.ceil(sessions.length * Math.min(1, (Date.now() - startedAt + SLICE_MS) / windowMs));
    for (; closed < due; closed++) {
      const session = sessions[closed]!;
      session.leaving = true;
      closing.push(session.settled().then(() => session.end(code, reason)));
    }
    if (closed < sessions.length) await new Promise((resolve) => setTimeout(resolve, SLICE_MS));
  }
  await Promise.all(closing);
}
