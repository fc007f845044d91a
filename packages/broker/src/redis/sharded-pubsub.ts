import { Redis, type Cluster, type RedisOptions } from 'ioredis';
import type { BrokerLog } from '../log.js';
import type { PubSub, PubSubEvents } from './pubsub.js';
import { whenReady } from './ready.js';
import { keySlot } from './slot.js';
import { SubscriberConnection, type ProbeSettings } from './subscriber-connection.js';

export interface ShardedPubSubOptions {
  /** The command client: its slot map says which primary owns which channel. */
  cluster: Cluster;
  /** Options for the per-primary subscriber connections. */
  nodeOptions: RedisOptions;
  /** Probe channel for a hash tag: it must contain `{tag}` and be unique to this gateway. */
  probeChannel(tag: string): string;
  probe: Omit<ProbeSettings, 'publish'>;
  log: BrokerLog;
}

/** A full slot map has this many entries. */
const SLOTS = 16384;

/**
 * Sharded pub/sub on Redis Cluster: one subscriber connection per primary, each
 * holding SSUBSCRIBE for the channels whose slot that primary owns, so a room's
 * messages only ever cross its own shard. After a failover or a slot move the
 * slot map changes (ioredis refreshes it periodically, and at once when a
 * connection drops or a subscribe is refused with MOVED), and channels follow
 * their slot to the new owner.
 */
export class ShardedPubSub implements PubSub {
  readonly publishCommand = 'SPUBLISH';
  readonly #cluster: Cluster;
  readonly #connections = new Map<string, SubscriberConnection>();
  /** channel -> its slot, for every channel wanted */
  readonly #wanted = new Map<string, number>();
  /** channel -> primary ("host:port") whose connection holds it */
  readonly #assigned = new Map<string, string>();
  #events: PubSubEvents | undefined;
  /** Channels being re-subscribed on a new owner: until they are, messages may have been missed. */
  #moving = 0;
  #refreshing = false;
  #closed = false;

  constructor(private readonly options: ShardedPubSubOptions) {
    this.#cluster = options.cluster;
  }

  get live(): boolean {
    if (this.#cluster.status !== 'ready' || this.#connections.size === 0) return false;
    for (const connection of this.#connections.values()) if (!connection.live) return false;
    return this.#moving === 0 && this.#assigned.size === this.#wanted.size;
  }

  get deafCount(): number {
    let deaf = 0;
    for (const connection of this.#connections.values()) if (connection.deaf) deaf++;
    return deaf;
  }

  get connectionCount(): number {
    return this.#connections.size;
  }

  start(events: PubSubEvents): void {
    this.#events = events;
    this.#cluster.on('refresh', () => this.#reconcile());
    this.#cluster.on('ready', () => this.#reconcile());
    if (this.#cluster.status === 'ready') this.#reconcile();
  }

  async subscribe(channel: string, waitMs: number): Promise<void> {
    const slot = keySlot(channel);
    this.#wanted.set(channel, slot);
    await whenReady(this.#cluster, waitMs);
    for (let attempt = 0; ; attempt++) {
      if (this.#connections.size === 0) this.#reconcile();
      const owner = this.#cluster.slots[slot]?.[0];
      if (owner === undefined) throw new Error(`CLUSTERDOWN no primary owns slot ${slot}`);
      const connection = this.#connections.get(owner) ?? this.#connect(owner);
      this.#assigned.set(channel, owner);
      try {
        await whenReady(connection.redis, waitMs);
        await connection.add(channel);
        return;
      } catch (err) {
        if (attempt > 0 || !(err instanceof Error) || !err.message.startsWith('MOVED')) throw err;
        await this.#refreshSlots(); // the slot moved: follow it once
      }
    }
  }

  async unsubscribe(channel: string): Promise<void> {
    this.#wanted.delete(channel);
    const owner = this.#assigned.get(channel);
    this.#assigned.delete(channel);
    if (owner !== undefined) await this.#connections.get(owner)?.remove(channel);
  }

  describe(): string {
    return [...this.#connections].map(([node, c]) => `${node} ${c.redis.status}${c.deaf ? ' deaf' : ''}`).join(', ');
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const connection of this.#connections.values()) this.#drop(connection);
    this.#connections.clear();
  }

  /** Makes the connections and assignments match the cluster's current slot map. */
  #reconcile(): void {
    const slots = this.#cluster.slots;
    if (this.#closed || slots.length < SLOTS) return;
    const primaries = new Set<string>();
    for (let slot = 0; slot < SLOTS; slot++) {
      const owner = slots[slot]?.[0];
      if (owner !== undefined) primaries.add(owner);
    }
    for (const [node, connection] of this.#connections) {
      if (primaries.has(node)) continue;
      this.options.log.info({ server: node }, 'no longer a primary: moving its subscriptions');
      this.#drop(connection);
      this.#connections.delete(node);
    }
    for (const node of primaries) {
      const connection = this.#connections.get(node) ?? this.#connect(node);
      void connection.setProbeChannel(this.#probeChannelFor(node)).catch(() => {});
    }
    for (const [channel, slot] of this.#wanted) {
      const owner = slots[slot]?.[0];
      const holder = this.#assigned.get(channel);
      if (owner === undefined || owner === holder) continue;
      this.#assigned.set(channel, owner);
      // No holder: a subscribe that failed, or one racing a cluster (re)start. Either way, take it.
      if (holder !== undefined) void this.#connections.get(holder)?.remove(channel);
      // Reported not live until subscribed there, so the broker goes down and back up
      // and rooms read back what was published while the channel was on its way.
      this.#moving++;
      this.#connections.get(owner)!.add(channel)
        .catch((err: unknown) => {
          this.options.log.warn({ err, channel, server: owner }, 'sharded subscribe failed; will follow the slot map');
          // Unassigned keeps the broker down (not live) until a later reconcile subscribes it.
          if (this.#assigned.get(channel) === owner) this.#assigned.delete(channel);
        })
        .finally(() => {
          this.#moving--;
          this.#events?.change();
        });
    }
    this.#events?.change();
  }

  #connect(node: string): SubscriberConnection {
    const [host, port] = splitNode(node);
    const redis = new Redis({ ...this.options.nodeOptions, host, port });
    redis.setMaxListeners(0);
    // A primary that drops may have failed over: look at the slot map again.
    redis.on('close', () => void this.#refreshSlots());
    const connection = new SubscriberConnection(redis, 'ssubscribe', this.#probeChannelFor(node), {
      ...this.options.probe,
      publish: (channel, payload) => this.#cluster.spublish(channel, payload),
    }, {
      message: (channel, payload) => this.#events?.message(channel, payload),
      change: () => this.#events?.change(),
      deaf: () => {
        this.#events?.deaf();
        void this.#refreshSlots();
      },
      moved: () => void this.#refreshSlots(),
    }, this.options.log);
    this.#connections.set(node, connection);
    return connection;
  }

  #drop(connection: SubscriberConnection): void {
    connection.close();
    connection.redis.removeAllListeners('close');
    connection.redis.disconnect();
  }

  /** A channel with a hash tag whose slot `node` owns now. */
  #probeChannelFor(node: string): string {
    const slots = this.#cluster.slots;
    for (let i = 0; i < 100_000; i++) {
      const channel = this.options.probeChannel(`p${i}`);
      if (slots[keySlot(channel)]?.[0] === node) return channel;
    }
    return this.options.probeChannel('p0'); // a node with no slots: nothing to hear
  }

  async #refreshSlots(): Promise<void> {
    if (this.#refreshing || this.#closed) return;
    this.#refreshing = true;
    try {
      await new Promise<void>((resolve) => this.#cluster.refreshSlotsCache(() => resolve()));
    } finally {
      this.#refreshing = false;
    }
    // 'refresh' reconciles on success; a failure is retried by the next trigger or interval.
  }
}

function splitNode(node: string): [string, number] {
  const colon = node.lastIndexOf(':');
  return [node.slice(0, colon), Number(node.slice(colon + 1))];
}
