import { randomBytes } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import type { EventRecording } from '../cluster-events.js';
import type { OfflineNotices } from '../offline-notices.js';
import { EventRecorder } from './event-recorder.js';
import type { KeySpace } from './keys.js';
import { callRedis } from './ready.js';
import { defineScripts, type ChatScripts } from './scripts.js';
import { SlotKeys } from './slot-keys.js';

export interface RedisOfflineNoticesOptions {
  /** Owned by the caller, who also closes them. */
  command: Redis | Cluster;
  /** For the wake channel only (a connection in subscriber mode runs nothing else). */
  subscriber: Redis | Cluster;
  keys: KeySpace;
  /** Redis Cluster: one due set per slot. */
  sharded: boolean;
  /** What the gateways record (member.unread is recorded only if listed). */
  recording: EventRecording;
  waitMs?: number;
}

/** Members a round reads the connections of at once. */
const PAGE = 500;
/** Due sets checked at once in a sweep (16,384 on a Redis Cluster). */
const SWEEP_CHUNK = 1024;

/**
 * OfflineNotices over the due sets the append script writes (see scripts.ts,
 * flag `u`). On a Redis Cluster there is one per slot: this node polls those it
 * knows to be non-empty (from the wake channel, and a sweep of all of them at
 * start and when asked), and forgets one it finds empty.
 */
export class RedisOfflineNotices implements OfflineNotices {
  readonly #command: (Redis | Cluster) & ChatScripts;
  readonly #sets: SlotKeys;
  readonly #events: EventRecorder;
  /** Due sets that may hold rooms. */
  readonly #known = new Set<string>();
  #onWake: (() => void) | undefined;
  readonly #waitMs: number;

  constructor(private readonly o: RedisOfflineNoticesOptions) {
    this.#command = defineScripts(o.command);
    this.#sets = new SlotKeys((tag) => o.keys.unreadDue(tag), o.sharded);
    this.#events = new EventRecorder(o.keys, o.recording, o.sharded, `notices.${randomBytes(4).toString('hex')}`);
    this.#waitMs = o.waitMs ?? 2000;
    if (!o.sharded) this.#known.add(o.keys.unreadDue());
  }

  /** Safe to call again after a failure: the handler is registered once. */
  async listen(onWake: () => void): Promise<void> {
    const channel = this.o.keys.unreadWake();
    if (this.#onWake === undefined) {
      this.#onWake = onWake;
      this.o.subscriber.on('message', (from: string, set: string) => {
        if (from !== channel) return;
        this.#known.add(set);
        this.#onWake?.();
      });
    }
    await this.o.subscriber.subscribe(channel);
  }

  /** Finds every non-empty due set (a wake may have been missed while the channel was down). */
  sweep(): Promise<void> {
    if (!this.o.sharded) return Promise.resolve();
    return this.#call(async () => {
      const sets = this.#sets.all();
      for (let i = 0; i < sets.length; i += SWEEP_CHUNK) {
        const chunk = sets.slice(i, i + SWEEP_CHUNK);
        const sizes = await Promise.all(chunk.map((set) => this.#command.zcard(set)));
        sizes.forEach((size, j) => {
          if (size > 0) this.#known.add(chunk[j]!);
        });
      }
    });
  }

  claimDue(limit: number): Promise<string[]> {
    return this.#call(async () => {
      const claimed: string[] = [];
      for (const set of [...this.#known]) {
        if (claimed.length >= limit) break;
        const [left, rooms] = await this.#command.chatUnreadClaim(set, limit - claimed.length);
        claimed.push(...rooms);
        if (left === 0 && this.o.sharded) this.#known.delete(set);
      }
      return claimed;
    });
  }

  notify(room: string, head: string): Promise<number> {
    return this.#call(async () => {
      const { keys } = this.o;
      let told = 0;
      for (let after = '-'; ;) {
        const users = await this.#command.zrange(keys.roomMembers(room), after, '+', 'BYLEX', 'LIMIT', 0, PAGE);
        if (users.length === 0) return told;
        const connected = await Promise.all(users.map((user) => this.#command.hlen(keys.userConnections(user))));
        const offline = users.filter((_, i) => connected[i] === 0);
        if (offline.length > 0) {
          const conversation = keys.conversation(room);
          told += await this.#command.chatUnreadNotify(
            ...conversation, this.#events.streamOf(conversation[3]), room, head, offline.join(','), ...this.#events.args(),
          );
        }
        if (users.length < PAGE) return told;
        after = `(${users.at(-1)!}`;
      }
    });
  }

  #call<T>(operation: () => Promise<T>): Promise<T> {
    return callRedis(this.#command, this.#waitMs, operation);
  }
}
