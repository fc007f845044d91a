/**
 * How a RedisBroker receives: one subscriber connection (a single Redis or a
 * Sentinel-managed primary), or one per Redis Cluster shard with sharded pub/sub.
 * Either way every connection proves it still hears (see SubscriberConnection).
 */
export interface PubSub {
  /** The command scripts and publishes use so their messages reach these subscribers. */
  readonly publishCommand: 'PUBLISH' | 'SPUBLISH';
  /** True while every connection holds every channel it should. */
  readonly live: boolean;
  /** Connections whose probe is overdue. */
  readonly deafCount: number;
  /** Subscriber connections (shards) now. */
  readonly connectionCount: number;

  start(events: PubSubEvents): void;
  /** Resolves once messages published to `channel` from now on arrive. */
  subscribe(channel: string, waitMs: number): Promise<void>;
  unsubscribe(channel: string): Promise<void>;
  /** For logs: each connection's server and state. */
  describe(): string;
  close(): Promise<void>;
}

export interface PubSubEvents {
  message(channel: Buffer, payload: Buffer): void;
  /** `live` or `deafCount` may have changed. */
  change(): void;
  /** A connection was found deaf. */
  deaf(): void;
}
