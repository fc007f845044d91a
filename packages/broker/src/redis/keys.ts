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

  /** Plain (cluster-wide) channel: a room just became dirty. */
  archiveWake(): string {
    return `${this.prefix}archive:wake`;
  }

  /** Sorted set: node incarnation -> expiry (ms, Redis clock). */
  presenceNodes(room: string): string {
    return `${this.prefix}room:{${room}}:nodes`;
  }

  /** Hash: user -> number of node incarnations that have the user in the room. */
  presenceUsers(room: string): string {
    return `${this.prefix}room:{${room}}:users`;
  }

  /** Prefix of the per-incarnation sets of users; the incarnation id follows. */
  presenceNodePrefix(room: string): string {
    return `${this.prefix}room:{${room}}:node:`;
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
