import type { Presence, PresenceChange } from './presence.js';

/**
 * The boundary between a gateway and the rest of the cluster. A broker knows
 * rooms, channels and bytes; it knows nothing of sockets or of the JSON inside
 * a frame.
 *
 * A room message is stored and published as `head + id + body`: the caller
 * builds head and body, the broker assigns the id (`<ms>-<seq>`, strictly
 * increasing per room) and splices it in, so every subscriber receives the
 * same finished bytes.
 */
export interface Broker {
  /** True while commands can be served and every subscription is live. */
  readonly up: boolean;

  /** Counters and gauges for metrics; read at scrape time. */
  stats(): BrokerStats;

  /** Starts connecting. Never throws for an outage: it reports it through `onStatus`. */
  start(listener: BrokerListener): void;

  /** Stops delivering events and releases what the broker itself created. */
  close(): Promise<void>;

  /** Resolves once messages of `room` published from now on reach `onRoomMessage`. */
  subscribeRoom(room: string): Promise<void>;
  unsubscribeRoom(room: string): Promise<void>;

  /**
   * Stores a message and publishes it in one atomic step, so publish order is
   * store order. In a members-only room (see Membership) a non-member's message
   * is refused with NotAMemberError, and a member's is numbered (see ReadPositions). Subscribers get a loss the append found (see `lastDelivered`)
   * before the message. With an `idempotencyKey` already used in the room within
   * the idempotency window, nothing is stored or published: the result is the
   * first message's, marked as a repeat. The check and the append are one step,
   * so two racing repeats on two nodes never both store.
   */
  append(message: AppendRequest): Promise<AppendResult>;

  /** The room's newest stored id and its loss mark (see markLost), read together. */
  streamHead(room: string): Promise<StreamHead>;

  /**
   * Up to `limit` stored messages older than `before` (newest when absent),
   * oldest first, in their current version (see MessageChanges): change entries
   * are left out, a deleted message is its tombstone, and with a `reader` a
   * message with reactions says which are the reader's.
   */
  history(room: string, before: string | undefined, limit: number, reader?: string): Promise<StoredMessage[]>;

  /**
   * Stored entries newer than `after`, oldest first: the newest `limit` of them;
   * messages in their current version and tombstones in place (as history()), changes as they are.
   * `gap` says why they may not be every message ever stored after `after`; it is
   * absent only when the stream proves continuity from `after` (see RangeGap).
   */
  after(room: string, after: string, limit: number): Promise<RangeResult>;

  /**
   * Records that messages of `room` up to `upTo` were delivered but the stream no
   * longer holds them (Redis restarted without them, or failed over to a replica
   * that lacked them). From then on `after()` from an id before `upTo` reports gap
   * `lost`, and every subscriber of the room gets `onRoomLoss` if this raised the
   * room's mark. Marks only rise.
   */
  markLost(room: string, upTo: string): Promise<void>;

  /** Who is present where: each node writes its own connections (see presence.ts). */
  readonly presence: Presence;

  /** Sends an ephemeral frame about `user` to the room's subscribers; never stored. */
  publishRoomEvent(room: string, user: string, frame: string): Promise<void>;

  /** Resolves once frames for `user` published from now on reach `onUserFrame`. */
  subscribeUser(user: string): Promise<void>;
  unsubscribeUser(user: string): Promise<void>;

  /**
   * Assigns an id and delivers `head + id + body` to every node subscribed to
   * `to`. Resolves with the id and how many nodes got it: 0 means `to` has no
   * connection anywhere. Nothing is stored but, with an `idempotencyKey`, the
   * fact that it was delivered: a repeat to the same recipient within the window
   * is not delivered again and resolves with the first one's id and ts.
   */
  sendDirect(message: DirectRequest): Promise<DirectResult>;

  /** Delivers a finished frame to every node subscribed to `user`. */
  publishToUser(user: string, frame: string): Promise<void>;

  /** Hands `command` (opaque) to every node subscribed to `user`; resolves with how many nodes got it. */
  sendUserCommand(user: string, command: string): Promise<number>;

  /**
   * Resolves once payloads sent to `node` from now on reach `onNodeMessage`: a
   * node's own inbox, for requests only that node can serve (a POST for an event
   * stream it holds). Kept across reconnects like every subscription.
   */
  subscribeNode(node: string): Promise<void>;

  /** Hands `payload` (opaque) to the node subscribed to `node`; resolves with how many got it: 0 when no such node is up. */
  sendToNode(node: string, payload: string): Promise<number>;
}

export interface BrokerStats {
  /** Subscriber connections (one per Redis Cluster shard). */
  subscriberConnections: number;
  /** Subscriber connections whose self-addressed probe is overdue. */
  deafSubscribers: number;
  /** Times a subscriber connection was found deaf (cumulative). */
  probeFailures: number;
  /** Appends the required replicas did not confirm in time (cumulative). */
  replicationTimeouts: number;
}

export interface AppendRequest {
  room: string;
  /** The sender: in a members-only room only a member may post (NotAMemberError), and the message moves their read position. */
  user: string;
  /** Bytes of the published frame before the id. */
  head: string;
  /** Bytes after the id; this is what is stored. */
  body: string;
  /** Time of acceptance (ms since the epoch), handed to subscribers for latency measurement. */
  ts: number;
  /**
   * The newest id the sending node delivered in the room. If nothing that new is
   * stored, the stream lost it: the append marks that (see markLost) first.
   */
  lastDelivered?: string;
  /** Opaque; appends to the room with the same key within the idempotency window store once. */
  idempotencyKey?: string;
}

export interface AppendResult {
  id: string;
  /** The `ts` the message was stored with: the request's, or the first one's for a repeat. */
  ts: number;
  /** True when the idempotency key was used before: nothing was stored or published now. */
  repeat: boolean;
}

export interface DirectRequest {
  to: string;
  /** Bytes of the frame before the id, and after it. */
  head: string;
  body: string;
  ts: number;
  /** Opaque; direct messages to `to` with the same key within the idempotency window are delivered once. */
  idempotencyKey?: string;
}

export interface DirectResult {
  id: string;
  ts: number;
  /** Nodes the frame reached now: 0 when `to` has no connection anywhere (and for a repeat, which is not sent again). */
  receivers: number;
  repeat: boolean;
}

/**
 * A stored room entry: a message, whose frame is `head + id + body`, or a
 * change of one (edit, delete, reaction; see changes.ts), whose frame is the
 * change's head (changeFrameHead) + id + body. Read through history() a
 * message's body is its current version (see MessageChanges).
 */
export interface StoredMessage {
  id: string;
  body: string;
  /** Its number in a members-only room; read by the archive feed only. */
  number?: number;
  /** Set on a change entry. */
  change?: StoredChange;
}

/** What a change entry changes. */
export interface StoredChange {
  kind: ChangeKind;
  /** The id of the message it changes. */
  target: string;
  /** A delete's: the deleted message's author and `ts`, for a reader (the archive) that never saw the message. */
  author?: string;
  sentAt?: number;
}

export type ChangeKind = 'edit' | 'delete' | 'reaction';

export interface StreamHead {
  /** The newest id stored in the room ('0-0' when none). */
  newest: string;
  /** The newest id marked lost in the room ('0-0' when none). */
  lost: string;
}

export interface RangeResult extends StreamHead {
  messages: StoredMessage[];
  /** Absent when `messages` is every message stored after the id, and none after it was ever lost. */
  gap?: RangeGap;
}

/**
 * Why a range after an id may be incomplete, in the order they are checked:
 * - `trimmed`: messages after the id were trimmed from the stream (it keeps a room's latest);
 * - `unproven`: the id is not stored and is not a point the stream knows it continues
 *   from (the newest trimmed id, or '0-0'), so nothing shows that no message after it
 *   was lost: the stream lost it (a restart, a failover), or it never was an id of this room;
 * - `limit`: more messages came after it than the limit allowed;
 * - `lost`: the loss mark is after the id: messages after it were delivered and are gone.
 * `lost` comes last, so a reader that already knows of that loss can tell that nothing else is missing.
 */
export type RangeGap = 'trimmed' | 'unproven' | 'limit' | 'lost';

/**
 * What a members-only room's message adds to its frame: its number in the
 * room, and who sent it (see ReadPositions). A delete of a counted message
 * carries the deleted message's number, who deleted it, and `deletes`.
 */
export interface CountedMessage {
  number: number;
  user: string;
  /** This entry deleted message `number`: it no longer counts as unread. */
  deletes?: true;
}

/** Callbacks from the broker. They must not throw. */
export interface BrokerListener {
  /**
   * A room message, in id order per room. `frame` holds the finished bytes and
   * may be a view into a larger buffer: copy it to keep it past the call.
   * `prev` is the id stored just before it ('0-0' for the first): a listener whose
   * last message is older than `prev` missed something and can read it back.
   * `counted` is there for a message of a members-only room.
   */
  onRoomMessage(room: string, id: string, ts: number, frame: Uint8Array, prev: string, counted?: CountedMessage): void;

  /**
   * The broker became usable (`true`) or not (`false`). After `false`, messages
   * published before the next `true` were not delivered: a listener that needs
   * every message reads them back with `after()`.
   */
  onStatus(up: boolean): void;

  /**
   * Some node found that the room's stream lost messages it had delivered, up to
   * `upTo` (see Broker.markLost). Members that may have missed them must be told.
   */
  onRoomLoss(room: string, upTo: string): void;

  /**
   * A user became present in `room` on some node, or is present nowhere any more
   * (see PresenceChange). A room's changes arrive in the order they happened.
   */
  onPresence(room: string, change: PresenceChange): void;

  /** An ephemeral frame about `user` (typing...) for the room's local members. */
  onRoomEvent(room: string, user: string, frame: Uint8Array): void;

  /** A frame for every local connection of `user` (direct messages). */
  onUserFrame(user: string, frame: Uint8Array): void;

  /** A command for this node's connections of `user` (see sendUserCommand). */
  onUserCommand(user: string, command: string): void;

  /** A payload sent to this node's inbox (see sendToNode); may be a view into a larger buffer. */
  onNodeMessage(payload: Uint8Array): void;
}
