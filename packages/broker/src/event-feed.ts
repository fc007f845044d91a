/**
 * The recorded cluster events, for the one reader per stream at a time that
 * delivers them (webhooks). Events sit in streams (one per Redis Cluster slot,
 * so every room's and every user's events keep their order); a reader leases a
 * stream, reads its oldest events, and acknowledges each once delivered.
 */
export interface EventFeed {
  /** True while commands can be served. */
  readonly up: boolean;

  /** Calls `onStream` for every stream that gets a first pending event from now on (best effort: sweep with `backlog`). */
  listen(onStream: (stream: string) => void): Promise<void>;

  /** Every stream with pending events: its length and the age of its oldest event. */
  backlog(): Promise<StreamBacklog[]>;

  /**
   * Takes (or renews) the stream's lease for `owner` and reads its oldest
   * `limit` events; `heldForMs` when another owner holds it.
   */
  claim(stream: string, owner: string, leaseMs: number, limit: number): Promise<ClaimedEvents | { heldForMs: number }>;

  /** Deletes a delivered event if `owner` still holds the lease; resolves with the events left, or null when the lease was lost. */
  ack(stream: string, owner: string, entry: string): Promise<number | null>;

  /** Gives the lease up (on shutdown), so another reader takes over at once. */
  release(stream: string, owner: string): Promise<void>;
}

export interface PendingEvent {
  /** The entry's id in its stream (not the event's id, which is inside `body`). */
  entry: string;
  /** The event's JSON. */
  body: string;
}

export interface ClaimedEvents {
  events: PendingEvent[];
  /** Events in the stream, these included. */
  pending: number;
}

export interface StreamBacklog {
  stream: string;
  pending: number;
  /** When the oldest pending event was recorded (ms since the epoch). */
  oldestAt: number;
}
