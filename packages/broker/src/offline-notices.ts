/**
 * Telling offline members of members-only rooms that messages wait for them,
 * so the application can send a push notification: the cluster event
 * `member.unread` ({room, user, unread, read, last, with?}) for each member with
 * no connection anywhere and unread messages. A room's first message after it
 * was last told makes it due a window later, so each member hears of a room at
 * most once per window, with the count at the end of it; the sender's own
 * message moves their read position, so it never counts for them.
 *
 * Each due room is claimed by one node cluster-wide, and its events are
 * recorded once. A node that dies between claiming and recording loses that
 * window's events for the room (the next message makes it due again).
 */
export interface OfflineNotices {
  /** Calls `onWake` when a room may have become due; callers poll `claimDue` besides. Retry it until it resolves. */
  listen(onWake: () => void): Promise<void>;

  /** Looks for due rooms everywhere, as wake-ups missed while not listening would have told. */
  sweep(): Promise<void>;

  /** Up to `limit` rooms whose window has passed, each handed to one caller cluster-wide. */
  claimDue(limit: number): Promise<string[]>;

  /**
   * Records `member.unread` for each member of `room` with no connection
   * anywhere and unread messages; `head` is the room's message frame head (see
   * Broker.append), for the event's `last`. Resolves with how many were recorded.
   */
  notify(room: string, head: string): Promise<number>;
}
