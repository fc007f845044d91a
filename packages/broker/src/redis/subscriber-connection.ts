import type { Redis } from 'ioredis';
import type { BrokerLog } from '../log.js';
import { keySlot } from './slot.js';

export type SubscribeMode = 'subscribe' | 'ssubscribe';

export interface ProbeSettings {
  /** How often a probe is published through this connection's server. */
  intervalMs: number;
  /** A probe not back within this long means the connection is deaf. */
  timeoutMs: number;
  /** Publishes through the command connection, so the probe crosses the same server as real traffic. */
  publish(channel: string, payload: string): Promise<unknown>;
}

export interface SubscriberEvents {
  message(channel: Buffer, payload: Buffer): void;
  /** `live` or `deaf` changed. */
  change(): void;
  /** A probe came back late or never: counted by the caller. */
  deaf(): void;
  /** A (S)SUBSCRIBE was refused with MOVED: the slot map is stale. */
  moved(): void;
}

const SUBSCRIBE_BATCH = 1000;
const RESTORE_RETRY_MS = 250;

/**
 * One subscriber connection to one Redis server and the channels it should hold.
 *
 * It restores them after every reconnect, and it checks that it still hears: a
 * probe published through the server must come back within the timeout. A
 * connection can stop receiving without closing (a failover demotes its server,
 * a slot moves, a middlebox drops the flow); a deaf one is dropped and made again.
 */
export class SubscriberConnection {
  readonly #channels = new Set<string>();
  /** probe sequence -> when it was published */
  readonly #pendingProbes = new Map<number, number>();
  #probeSeq = 0;
  #live = false;
  #deaf = false;
  #generation = 0;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(
    readonly redis: Redis,
    private readonly mode: SubscribeMode,
    private probeChannel: string,
    private readonly probe: ProbeSettings,
    private readonly events: SubscriberEvents,
    private readonly log: BrokerLog,
  ) {
    redis.on('ready', () => void this.#restore());
    redis.on('close', () => this.#setLive(false));
    redis.on('error', (err: Error) => this.log.debug({ err, connection: 'subscriber' }, 'redis connection error'));
    redis.on(mode === 'subscribe' ? 'messageBuffer' : 'smessageBuffer', (channel: Buffer, payload: Buffer) => {
      if (channel.length === this.probeChannel.length && channel.toString('latin1') === this.probeChannel) this.#probeBack(payload);
      else this.events.message(channel, payload);
    });
    if (redis.status === 'ready') void this.#restore();
    this.#timer = setInterval(() => this.#probeTick(), probe.intervalMs);
    this.#timer.unref();
  }

  /** Subscribed to everything it should hold since its last (re)connect. */
  get live(): boolean {
    return this.#live;
  }

  /** A probe is overdue: messages published through this server are not arriving. */
  get deaf(): boolean {
    return this.#deaf;
  }

  async add(channel: string): Promise<void> {
    this.#channels.add(channel);
    if (this.redis.status !== 'ready') return; // #restore subscribes it
    try {
      await this.#command('subscribe', [channel]);
    } catch (err) {
      this.#onSubscribeError(err);
      throw err;
    }
  }

  async remove(channel: string): Promise<void> {
    if (!this.#channels.delete(channel) || this.redis.status !== 'ready') return;
    await this.#command('unsubscribe', [channel]).catch(() => {});
  }

  /** Points the probe at a channel that hashes to this server (after a slot map change). */
  async setProbeChannel(channel: string): Promise<void> {
    if (channel === this.probeChannel) return;
    const old = this.probeChannel;
    this.probeChannel = channel;
    this.#pendingProbes.clear();
    if (this.redis.status !== 'ready') return;
    await this.#command('unsubscribe', [old]).catch(() => {});
    await this.#command('subscribe', [channel]).catch((err: unknown) => this.#onSubscribeError(err));
  }

  /** Drops the connection; ioredis reconnects and #restore subscribes everything again. */
  reconnect(): void {
    this.#setLive(false);
    this.redis.disconnect(true);
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#timer);
    this.#setLive(false);
  }

  async #restore(): Promise<void> {
    const generation = ++this.#generation;
    this.#pendingProbes.clear();
    try {
      await Promise.all(this.#batches([this.probeChannel, ...this.#channels]).map((batch) => this.#command('subscribe', batch)));
      if (generation !== this.#generation) return;
      if (this.#channels.size > 0) this.log.info({ channels: this.#channels.size, server: serverOf(this.redis) }, 'redis subscriptions restored');
      this.#setLive(true);
    } catch (err) {
      this.#onSubscribeError(err);
      this.log.warn({ err, server: serverOf(this.redis) }, 'redis resubscription failed');
      // A dropped connection retries on its next 'ready'. A refused channel (its slot moved)
      // is taken away by the caller meanwhile; then the rest must still be subscribed.
      if (generation === this.#generation && this.redis.status === 'ready' && !this.#closed) {
        setTimeout(() => {
          if (generation === this.#generation && this.redis.status === 'ready' && !this.#closed) void this.#restore();
        }, RESTORE_RETRY_MS).unref();
      }
    }
  }

  /** SUBSCRIBE takes any channels at once; SSUBSCRIBE only channels of one slot. */
  #batches(channels: string[]): string[][] {
    if (this.mode === 'subscribe') {
      const batches: string[][] = [];
      for (let i = 0; i < channels.length; i += SUBSCRIBE_BATCH) batches.push(channels.slice(i, i + SUBSCRIBE_BATCH));
      return batches;
    }
    const bySlot = new Map<number, string[]>();
    for (const channel of channels) {
      const slot = keySlot(channel);
      const batch = bySlot.get(slot);
      if (batch === undefined) bySlot.set(slot, [channel]);
      else batch.push(channel);
    }
    return [...bySlot.values()];
  }

  #command(action: 'subscribe' | 'unsubscribe', channels: string[]): Promise<unknown> {
    const redis = this.redis;
    if (this.mode === 'subscribe') return action === 'subscribe' ? redis.subscribe(...channels) : redis.unsubscribe(...channels);
    return action === 'subscribe' ? redis.ssubscribe(...channels) : redis.sunsubscribe(...channels);
  }

  #onSubscribeError(err: unknown): void {
    if (err instanceof Error && /^(MOVED|CROSSSLOT|CLUSTERDOWN)\b/.test(err.message)) this.events.moved();
  }

  #probeTick(): void {
    if (this.#closed || this.redis.status !== 'ready' || !this.#live) return;
    const now = Date.now();
    for (const sentAt of this.#pendingProbes.values()) {
      if (now - sentAt < this.probe.timeoutMs) break; // oldest first
      this.#pendingProbes.clear();
      this.#setDeaf(true);
      this.events.deaf();
      this.log.warn({ server: serverOf(this.redis), timeoutMs: this.probe.timeoutMs }, 'subscriber is deaf: a probe did not come back; reconnecting it');
      this.reconnect();
      return;
    }
    const seq = ++this.#probeSeq;
    this.#pendingProbes.set(seq, now);
    // A failed publish leaves the probe pending: a server that cannot take it is not one we hear from.
    this.probe.publish(this.probeChannel, String(seq)).catch(() => {});
  }

  #probeBack(payload: Buffer): void {
    const seq = Number(payload.toString('latin1'));
    for (const pending of this.#pendingProbes.keys()) {
      if (pending > seq) break;
      this.#pendingProbes.delete(pending);
    }
    this.#setDeaf(false);
  }

  #setLive(live: boolean): void {
    if (live === this.#live) return;
    this.#live = live;
    this.events.change();
  }

  #setDeaf(deaf: boolean): void {
    if (deaf === this.#deaf) return;
    this.#deaf = deaf;
    this.events.change();
  }
}

export function serverOf(redis: Redis): string {
  return `${redis.options.host ?? '?'}:${redis.options.port ?? '?'}`;
}
