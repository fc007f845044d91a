import type { Cluster, Redis } from 'ioredis';
import { BrokerUnavailableError } from '../errors.js';
import { RevocationTable, type TokenRevocations } from '../revocations.js';
import type { KeySpace } from './keys.js';
import { callRedis, whenReady } from './ready.js';
import { defineScripts, type ChatScripts } from './scripts.js';

export interface RedisRevocationsOptions {
  /** Owned by the caller. */
  command: Redis | Cluster;
  /** A connection of its own for the revocation channel (see duplicateForChannel); owned by the caller. */
  subscriber: Redis | Cluster;
  keys: KeySpace;
  /** How long revoke() waits for a (re)connecting Redis. */
  waitMs: number;
  /** The whole table is read again this often, a net for a message missed while a subscription was re-made. */
  refreshMs?: number;
}

/**
 * Revocations held in memory on every node: heard on a channel as they are
 * made, and read whole when the subscription (re)starts and every `refreshMs`.
 * revokedBefore() refuses to answer (throws) while the table may be stale:
 * the subscriber is down, or no read has succeeded for three refresh periods.
 */
export class RedisRevocations implements TokenRevocations {
  readonly #command: (Redis | Cluster) & ChatScripts;
  readonly #subscriber: Redis | Cluster;
  readonly #keys: KeySpace;
  readonly #waitMs: number;
  readonly #refreshMs: number;
  readonly #table = new RevocationTable();
  /** When the current subscription was confirmed; undefined while there is none. */
  #subscribedAt: number | undefined;
  #readAt = Number.NEGATIVE_INFINITY;
  #timer: NodeJS.Timeout | undefined;

  constructor(options: RedisRevocationsOptions) {
    this.#command = defineScripts(options.command);
    this.#subscriber = options.subscriber;
    this.#keys = options.keys;
    this.#waitMs = options.waitMs;
    this.#refreshMs = options.refreshMs ?? 2000;
  }

  /** Subscribes and reads the table; resolves once trusted, or after `waitMs` if Redis is away (revokedBefore throws meanwhile). */
  async start(): Promise<void> {
    const channel = this.#keys.revocationChannel();
    this.#subscriber.on('message', (from: string, message: string) => {
      if (from === channel) this.#heard(message);
    });
    this.#subscriber.on('close', () => { this.#subscribedAt = undefined; });
    this.#timer = setInterval(() => void this.#read(), this.#refreshMs);
    this.#timer.unref();
    const connected = await whenReady(this.#subscriber, this.#waitMs).then(() => true, () => false);
    this.#subscriber.on('ready', () => void this.#listen());
    if (connected) await this.#listen();
  }

  async revoke(user: string, before: number, ttlMs: number): Promise<void> {
    const now = Date.now();
    const value = await callRedis(this.#command, this.#waitMs, () =>
      this.#command.chatRevoke(this.#keys.revocations(), user, before, now + ttlMs, now, this.#keys.revocationChannel()));
    this.#merge(user, value);
  }

  revokedBefore(user: string): number | undefined {
    const now = Date.now();
    const subscribedAt = this.#subscribedAt;
    // Trusted once the table was read after the subscription began, and lately.
    if (subscribedAt === undefined || this.#readAt < subscribedAt || now - this.#readAt > 3 * this.#refreshMs) {
      throw new BrokerUnavailableError('token revocations cannot be checked now');
    }
    return this.#table.before(user, now);
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
  }

  async #listen(): Promise<void> {
    try {
      const at = Date.now();
      await this.#subscriber.subscribe(this.#keys.revocationChannel());
      this.#subscribedAt = at;
    } catch {
      return; // the next 'ready' tries again
    }
    await this.#read();
  }

  /** Reads the whole table (a failure leaves it to the next refresh). */
  async #read(): Promise<void> {
    const at = Date.now();
    try {
      const all = await callRedis(this.#command, this.#waitMs, () => this.#command.hgetall(this.#keys.revocations()));
      for (const [user, value] of Object.entries(all)) this.#merge(user, value);
      this.#readAt = at;
    } catch {
      // revokedBefore() refuses once the last read is too old.
    }
  }

  #heard(message: string): void {
    const second = message.indexOf('|', message.indexOf('|') + 1);
    if (second > 0) this.#merge(message.slice(second + 1), message.slice(0, second));
  }

  #merge(user: string, value: string): void {
    const [before, until] = value.split('|').map(Number);
    if (Number.isFinite(before) && Number.isFinite(until)) this.#table.merge(user, { before: before!, until: until! });
  }
}
