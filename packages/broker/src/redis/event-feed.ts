import type { Cluster, Redis } from 'ioredis';
import type { ClaimedEvents, EventFeed, StreamBacklog } from '../event-feed.js';
import type { KeySpace } from './keys.js';
import { callRedis } from './ready.js';
import { defineScripts, type ChatScripts } from './scripts.js';
import { SlotKeys } from './slot-keys.js';

export interface RedisEventFeedOptions {
  /** Owned by the caller, who also closes them. */
  command: Redis | Cluster;
  /** For the wake channel only (a connection in subscriber mode runs nothing else). */
  subscriber: Redis | Cluster;
  keys: KeySpace;
  /** Redis Cluster: one event stream per slot. */
  sharded: boolean;
  /** How long a call waits for a (re)connecting Redis before it fails as unavailable. */
  waitMs?: number;
}

/** Streams swept at once. */
const SWEEP_CHUNK = 1024;

/** The EventFeed over the streams the presence and append scripts record into. */
export class RedisEventFeed implements EventFeed {
  readonly #command: (Redis | Cluster) & ChatScripts;
  readonly #subscriber: Redis | Cluster;
  readonly #keys: KeySpace;
  readonly #streams: SlotKeys;
  readonly #waitMs: number;
  #listening = false;

  constructor(options: RedisEventFeedOptions) {
    this.#command = defineScripts(options.command);
    this.#subscriber = options.subscriber;
    this.#keys = options.keys;
    this.#streams = new SlotKeys((tag) => options.keys.events(tag), options.sharded);
    this.#waitMs = options.waitMs ?? 2000;
  }

  get up(): boolean {
    return this.#command.status === 'ready';
  }

  /** Safe to call again after a failure (the dispatcher retries it): the handler is registered once. */
  async listen(onStream: (stream: string) => void): Promise<void> {
    const channel = this.#keys.eventsWake();
    if (!this.#listening) {
      this.#listening = true;
      this.#subscriber.on('message', (from: string, stream: string) => {
        if (from === channel) onStream(stream);
      });
    }
    await this.#subscriber.subscribe(channel);
  }

  /** One small script per stream: on a Redis Cluster 16,384 of them, in chunks. */
  backlog(): Promise<StreamBacklog[]> {
    return this.#call(async () => {
      const streams = this.#streams.all();
      const found: StreamBacklog[] = [];
      for (let i = 0; i < streams.length; i += SWEEP_CHUNK) {
        const chunk = streams.slice(i, i + SWEEP_CHUNK);
        const replies = await Promise.all(chunk.map((stream) => this.#command.chatEventsBacklog(stream)));
        replies.forEach((reply, j) => {
          if (reply[0] > 0) found.push({ stream: chunk[j]!, pending: reply[0], oldestAt: Number(reply[1]!.split('-')[0]) });
        });
      }
      return found;
    });
  }

  claim(stream: string, owner: string, leaseMs: number, limit: number): Promise<ClaimedEvents | { heldForMs: number }> {
    return this.#call(async () => {
      const reply = await this.#command.chatEventsClaim(this.#keys.eventsLease(stream), stream, owner, leaseMs, limit);
      if (reply[0] === 0) return { heldForMs: Math.max(0, reply[1]) };
      const [, pending, raw] = reply;
      return { pending, events: raw.map(([entry, fields]) => ({ entry, body: fields[fields.indexOf('e') + 1] ?? '' })) };
    });
  }

  ack(stream: string, owner: string, entry: string): Promise<number | null> {
    return this.#call(async () => {
      const left = await this.#command.chatEventsAck(this.#keys.eventsLease(stream), stream, owner, entry);
      return left < 0 ? null : left;
    });
  }

  async release(stream: string, owner: string): Promise<void> {
    await this.#call(() => this.#command.chatEventsRelease(this.#keys.eventsLease(stream), owner));
  }

  #call<T>(operation: () => Promise<T>): Promise<T> {
    return callRedis(this.#command, this.#waitMs, operation);
  }
}
