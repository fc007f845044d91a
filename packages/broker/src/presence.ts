/**
 * Who is present where, cluster-wide (as centrifuge keeps its PresenceManager
 * apart from its Broker). Each node writes only its own connections; a node
 * that dies without a word is withdrawn by the others within the presence
 * timeout. Transitions reach the room's subscribers as the broker's
 * `onPresence`, with the count they left, and are recorded as cluster events
 * when recording is on.
 *
 * A room's count is a counter kept in step with its members, and its users are
 * kept in id order, so nothing here reads or sends anything that grows with the
 * room: a join costs the same in a room of 10 and of 50,000.
 */
export interface Presence {
  /**
   * Marks `user` present in `room` through this node, with `connections` of
   * their connections joined here (1 by default), and resolves with the room's
   * count and its first `list` users by id (none by default). Idempotent. The
   * room's subscribers get `onPresence(online)` when this makes the user present
   * cluster-wide.
   */
  join(room: string, user: string, options?: { connections?: number; list?: number }): Promise<RoomHeadcount>;

  /** Withdraws this node's presence of `user` in `room`; `onPresence(offline)` when no node has the user there any more. */
  leave(room: string, user: string): Promise<void>;

  /** Up to `limit` users present in `room`, by id (byte order), after `after` (exclusive; from the first when absent). */
  members(room: string, after: string | undefined, limit: number): Promise<MemberPage>;

  /**
   * Records how many connections `user` has on this node (0: none left). The
   * first connection anywhere in the cluster records `user.online`, the last one
   * gone `user.offline`.
   */
  setUserConnections(user: string, connections: number): Promise<void>;
}

export interface RoomHeadcount {
  /** Users present in the room on any node. */
  count: number;
  /** The first users by id, as many as asked for. */
  first: string[];
  /** The room's latest presence change (see PresenceChange.seq): this answer includes every change up to it. */
  seq: number;
}

/** A user arrived in a room (first connection on any node) or left it (last one gone). */
export interface PresenceChange {
  user: string;
  online: boolean;
  /** The room's count right after this change (-1 from a node of an older version, which sends none). */
  count: number;
  /**
   * The change's place among the room's changes: they are numbered in the order they
   * happened, so a reader can tell which of them a join's answer already included.
   * Numbering starts again when a room left empty for a while fills again; -1 when unknown.
   */
  seq: number;
}

export interface MemberPage {
  users: string[];
  /** Users present in the room on any node when the page was read. */
  count: number;
  /** The last user of the page, when more follow: pass it as `after`. */
  next?: string;
}

/** Compares user ids as Redis orders equal-score sorted-set members: by bytes. Ids are ASCII, so by UTF-16 units too. */
export function compareUserIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
