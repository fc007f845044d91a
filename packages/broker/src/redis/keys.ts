/**
 * Key and channel names. Everything that belongs to one room carries the same
 * hash tag `{room}`, so it lives on one Redis Cluster shard and a Lua script can
 * touch all of it; a user's channel carries `{user}`.
 */
export class KeySpace {
  constructor(readonly prefix: string) {}

  roomChannel(room: string): string {
    return `${this.prefix}room:{${room}}`;
  }

  roomStream(room: string): string {
    return `${this.prefix}room:{${room}}:log`;
  }

  /** Holds the id of the newest message trimmed from the room's stream. */
  roomTrimmed(room: string): string {
    return `${this.prefix}room:{${room}}:trimmed`;
  }

  /** Holds the newest id some node delivered that the stream then lost (restart, failover). */
  roomLost(room: string): string {
    return `${this.prefix}room:{${room}}:lost`;
  }

  /** `<id>|<ts>` of the message first appended with an idempotency key (expires by itself). */
  roomOnce(room: string, key: string): string {
    return `${this.prefix}room:{${room}}:once:${key}`;
  }

  /** The id up to which the room is archived: trimming spares what is newer (see the append script). */
  roomArchived(room: string): string {
    return `${this.prefix}room:{${room}}:archived`;
  }

  /** Who archives the room now (a lease with an expiry). */
  roomArchiver(room: string): string {
    return `${this.prefix}room:{${room}}:archiver`;
  }

  /**
   * Set of rooms with messages not archived yet. One for everything on a single
   * server; on a Redis Cluster one per slot (`slotTag` names a tag on it), so the
   * append script can add a room to the set of its own slot.
   */
  archiveDirty(slotTag?: string): string {
    return slotTag === undefined ? `${this.prefix}archive:dirty` : `${this.prefix}archive:dirty:{${slotTag}}`;
  }

  /**
   * Sorted set: members-only rooms -> when (ms, Redis clock) their offline members
   * are due to be told of unread messages. One per slot on a Redis Cluster, like the archive's sets.
   */
  unreadDue(slotTag?: string): string {
    return slotTag === undefined ? `${this.prefix}unread:due` : `${this.prefix}unread:due:{${slotTag}}`;
  }

  /** Plain (cluster-wide) channel: a due set just got its first room (the payload names the set). */
  unreadWake(): string {
    return `${this.prefix}unread:wake`;
  }

  /** Plain (cluster-wide) channel: a room just became dirty. */
  archiveWake(): string {
    return `${this.prefix}archive:wake`;
  }

  /** Hash of a members-only room's scalars: `mo`, `n`, `last`, `pair` (see conversation-scripts.ts). */
  roomConversation(room: string): string {
    return `${this.prefix}room:{${room}}:conv`;
  }

  /** Sorted set, all scores 0 (so it pages by id): a members-only room's stored members. */
  roomMembers(room: string): string {
    return `${this.prefix}room:{${room}}:members`;
  }

  /** Hash: member -> "<id>|<number>", their read position (see conversation-scripts.ts). */
  roomReads(room: string): string {
    return `${this.prefix}room:{${room}}:reads`;
  }

  /**
   * Hash: what changed about the room's messages (see change-scripts.ts):
   * `<id>` -> the message's current body (edited, or a tombstone), `<id>|e` -> its
   * edits' entry ids, `<id>|r` -> its reaction counts (JSON).
   */
  roomChanges(room: string): string {
    return `${this.prefix}room:{${room}}:changes`;
  }

  /** Sorted set, all scores 0, ordered by name: the index of the room's changes (tombstones, reactors, changed messages). */
  roomChangeMarks(room: string): string {
    return `${this.prefix}room:{${room}}:marks`;
  }

  /** Hash: `m:<user>` -> '1' for a moderator the backend named; `r:<user>` -> 'b|<reason>' (banned) or 'm|<reason>' (muted). */
  roomModeration(room: string): string {
    return `${this.prefix}room:{${room}}:moderation`;
  }

  /** The keys every conversation script of a room takes, in order (see conversation-scripts.ts). */
  conversation(room: string): [conv: string, members: string, reads: string, stream: string, marks: string, changes: string] {
    return [this.roomConversation(room), this.roomMembers(room), this.roomReads(room), this.roomStream(room), this.roomChangeMarks(room), this.roomChanges(room)];
  }

  /** Set while Redis holds its members-only rooms (see ConversationRestore); gone with a Redis that lost them. */
  conversationsIntact(): string {
    return `${this.prefix}{conv}:intact`;
  }

  /** Sorted set: the members-only rooms of `user` -> when they became a member (ms); on the user's slot. */
  userConversations(user: string): string {
    return `${this.prefix}user:{${user}}:convs`;
  }

  /** Sorted set, all scores 0 (so it pages by id): the users present in the room on any node. See presence-scripts.ts. */
  roomPresent(room: string): string {
    return `${this.prefix}room:{${room}}:present`;
  }

  /** Hash: user -> connections joined to the room over every node. */
  roomConnections(room: string): string {
    return `${this.prefix}room:{${room}}:conns`;
  }

  /** Hash: user -> connections joined to the room through one node incarnation. */
  roomHold(room: string, incarnation: string): string {
    return `${this.prefix}room:{${room}}:hold:${incarnation}`;
  }

  /** Hash of the room's presence scalars: `epoch` (when it last became occupied) and `conns`. */
  roomPresence(room: string): string {
    return `${this.prefix}room:{${room}}:presence`;
  }

  /** Sorted set (all scores 0, so it pages by name) of rooms that may be occupied: a superset, pruned as rooms empty. */
  roomIndex(): string {
    return `${this.prefix}{rooms}:index`;
  }

  /** Hash: room -> the epoch at which it was last added to the index. */
  roomIndexEpochs(): string {
    return `${this.prefix}{rooms}:epochs`;
  }

  /** Sorted set: gateway incarnation -> expiry (ms, Redis clock); the liveness behind user presence. */
  nodes(): string {
    return `${this.prefix}{nodes}`;
  }

  /** Sorted set: incarnation found dead -> until when one node reaps it (ms, Redis clock). */
  nodesReaping(): string {
    return `${this.prefix}{nodes}:reaping`;
  }

  /** Set of the users with a connection on an incarnation, for reaping it when it dies. */
  nodeUsers(incarnation: string): string {
    return `${this.prefix}node:{${incarnation}}:users`;
  }

  /** Set of the rooms with a user present through an incarnation, for reaping it when it dies. */
  nodeRooms(incarnation: string): string {
    return `${this.prefix}node:{${incarnation}}:rooms`;
  }

  /** Hash: incarnation -> the user's connections there. */
  userConnections(user: string): string {
    return `${this.prefix}user:{${user}}:conns`;
  }

  /** Set of the rooms the user has joined through an incarnation. */
  userRooms(user: string, incarnation: string): string {
    return `${this.prefix}user:{${user}}:rooms:${incarnation}`;
  }

  /** Hash of the token revocations in force, user -> "before|until" (see revocation-scripts.ts). */
  revocations(): string {
    return `${this.prefix}revocations`;
  }

  /** Where every node hears of a new revocation. */
  revocationChannel(): string {
    return `${this.prefix}revocations`;
  }

  /** Stream of cluster events (for webhooks): one on a single server, one per slot on a Redis Cluster (`slotTag`). */
  events(slotTag?: string): string {
    return slotTag === undefined ? `${this.prefix}events` : `${this.prefix}events:{${slotTag}}`;
  }

  /** Who delivers an event stream now (a lease with an expiry); same slot as the stream. */
  eventsLease(stream: string): string {
    return `${stream}:lease`;
  }

  /** Plain (cluster-wide) channel: an event stream just got its first pending event. */
  eventsWake(): string {
    return `${this.prefix}events:wake`;
  }

  /** A node's inbox (see Broker.subscribeNode). */
  nodeChannel(node: string): string {
    return `${this.prefix}node:{${node}}`;
  }

  userChannel(user: string): string {
    return `${this.prefix}user:{${user}}`;
  }

  /** `<id>|<ts>` of a direct message to `user` first delivered with an idempotency key (expires by itself). */
  directOnce(user: string, key: string): string {
    return `${this.prefix}user:{${user}}:once:${key}`;
  }

  /** An empty stream whose only job is to hand out increasing ids for direct messages to `user`. */
  directSequence(user: string): string {
    return `${this.prefix}user:{${user}}:dm-seq`;
  }
}
