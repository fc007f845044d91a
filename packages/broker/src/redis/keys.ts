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
