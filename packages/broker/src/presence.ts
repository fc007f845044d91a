/**
 * Who is present where, cluster-wide (as centrifuge keeps its PresenceManager
 * apart from its Broker). Each node writes only its own connections; a node
 * that dies without a word is withdrawn by the others within the presence
 * timeout. Transitions reach the room's subscribers as the broker's
 * `onPresence`, and are recorded as cluster events when recording is on.
 */
export interface Presence {
  /**
   * Marks `user` present in `room` through this node, with `connections` of
   * their connections joined here (1 by default), and resolves with every user
   * present in the room on any node. Idempotent. The room's subscribers get
   * `onPresence(online)` when this makes the user present cluster-wide.
   */
  join(room: string, user: string, connections?: number): Promise<string[]>;

  /** Withdraws this node's presence of `user` in `room`; `onPresence(offline)` when no node has the user there any more. */
  leave(room: string, user: string): Promise<void>;

  /**
   * Records how many connections `user` has on this node (0: none left). The
   * first connection anywhere in the cluster records `user.online`, the last one
   * gone `user.offline`.
   */
  setUserConnections(user: string, connections: number): Promise<void>;
}
