import { randomBytes } from 'node:crypto';
import { compareIds } from '@chat/protocol';
import { ReplyError, type Redis } from 'ioredis';
import type { AppendRequest, Broker, BrokerListener, RangeResult, StoredMessage } from '../broker.js';
import { BrokerCommandError, BrokerUnavailableError } from '../errors.js';
import { BEFORE_MAX_STREAM_ID, MAX_STREAM_ID, MIN_STREAM_ID } from '../ids.js';
import { silentLog, type BrokerLog } from '../log.js';
import { trimBatch } from '../trim.js';
import { decodeRoomPayload, decodeUserPayload, encodeRoomEvent, encodeUserPayload } from './envelope.js';
import type { KeySpace } from './keys.js';
import { defineScripts, type ChatScripts, type RawEntry } from './scripts.js';

export interface RedisBrokerOptions {
  /** Owned by the caller, who also closes them. */
  command: Redis;
  subscriber: Redis;
  keys: KeySpace;
  /** Messages kept per room. */
  historySize: number;
  /** This gateway's id; presence entries belong to it plus a per-process suffix. */
  nodeId?: string;
  /** A node that stops heartbeating is withdrawn from presence after this long. */
  presenceTtlMs?: number;
  /** How often the command connection is probed; a failed probe marks the broker down. */
  healthCheckMs?: number;
  /** How long a call waits for a connection that is (re)connecting before it fails as unavailable. */
  connectWaitMs?: number;
  log?: BrokerLog;
}

/** Errors Redis answers while it cannot serve, as opposed to errors in the request. */
const TRANSIENT_REPLY = /^(LOADING|READONLY|CLUSTERDOWN|MASTERDOWN|TRYAGAIN|BUSY|NOREPLICAS|MOVED|ASK)\b/;
const SUBSCRIBE_BATCH = 1000;
const PUBLISH = 'PUBLISH';
const DIRECT_SEQUENCE_TTL_MS = 24 * 3600 * 1000;

type Subscription = { kind: 'room' | 'user'; name: string };

export class RedisBroker implements Broker {
  readonly #command: Redis & ChatScripts;
  readonly #subscriber: Redis;
  readonly #keys: KeySpace;
  readonly #historySize: number;
  readonly #trimBatch: number;
  readonly #incarnation: string;
  readonly #presenceTtlMs: number;
  readonly #healthCheckMs: number;
  readonly #connectWaitMs: number;
  readonly #log: BrokerLog;

  /** channel -> what it carries, for everything this node wants; the source of truth for resubscribing. */
  readonly #channels = new Map<string, Subscription>();
  /** room -> users this node holds present there; re-announced whenever Redis lost them. */
  readonly #presence = new Map<string, Set<string>>();
  #listener: BrokerListener | null = null;
  #up = false;
  #commandHealthy = true;
  #subscriberLive = false;
  /** Bumped on each subscriber reconnect so a stale resubscription cannot mark the newer one live. */
  #subscriberGeneration = 0;
  #timers: NodeJS.Timeout[] = [];

  constructor(options: RedisBrokerOptions) {
    this.#command = defineScripts(options.command);
    this.#subscriber = options.subscriber;
    this.#keys = options.keys;
    this.#historySize = options.historySize;
    this.#trimBatch = trimBatch(options.historySize);
    this.#incarnation = `${options.nodeId ?? 'node'}.${randomBytes(4).toString('hex')}`;
    this.#presenceTtlMs = options.presenceTtlMs ?? 10_000;
    this.#healthCheckMs = options.healthCheckMs ?? 1000;
    this.#connectWaitMs = options.connectWaitMs ?? 2000;
    this.#log = options.log ?? silentLog;
  }

  get up(): boolean {
    return this.#up;
  }

  start(listener: BrokerListener): void {
    this.#listener = listener;
    const command = this.#command;
    const subscriber = this.#subscriber;
    command.on('ready', () => this.#refresh());
    command.on('close', () => this.#refresh());
    command.on('error', (err: Error) => this.#log.debug({ err, connection: 'command' }, 'redis connection error'));
    subscriber.on('ready', () => void this.#resubscribe());
    subscriber.on('close', () => {
      this.#subscriberLive = false;
      this.#refresh();
    });
    subscriber.on('error', (err: Error) => this.#log.debug({ err, connection: 'subscriber' }, 'redis connection error'));
    subscriber.on('messageBuffer', (channel: Buffer, payload: Buffer) => this.#onPayload(channel, payload));
    if (subscriber.status === 'ready') void this.#resubscribe();
    this.#every(this.#healthCheckMs, () => this.#checkHealth());
    this.#every(Math.max(50, Math.floor(this.#presenceTtlMs / 4)), () => this.#heartbeat());
    this.#refresh();
  }

  /** Withdraws this node's presence (others see `offline` at once), then stops. */
  async close(): Promise<void> {
    for (const timer of this.#timers) clearInterval(timer);
    const rooms = [...this.#presence.keys()];
    this.#presence.clear();
    if (this.#command.status === 'ready') {
      await Promise.all(rooms.map((room) => this.#command.chatPresenceNodeLeave(
        ...this.#presenceKeys(room), this.#incarnation, this.#keys.roomChannel(room), PUBLISH,
      ).catch((err: unknown) => this.#log.warn({ err, room }, 'presence withdrawal failed'))));
    }
    this.#listener = null;
    this.#channels.clear();
    this.#refresh();
  }

  subscribeRoom(room: string): Promise<void> {
    return this.#subscribe(this.#keys.roomChannel(room), { kind: 'room', name: room }, true);
  }

  unsubscribeRoom(room: string): Promise<void> {
    return this.#unsubscribe(this.#keys.roomChannel(room));
  }

  /** A user's channel stays wanted even if subscribing fails now: the next reconnect subscribes it. */
  subscribeUser(user: string): Promise<void> {
    return this.#subscribe(this.#keys.userChannel(user), { kind: 'user', name: user }, false);
  }

  unsubscribeUser(user: string): Promise<void> {
    return this.#unsubscribe(this.#keys.userChannel(user));
  }

  append(message: AppendRequest): Promise<string> {
    const { room } = message;
    return this.#call(() => this.#command.chatAppend(
      this.#keys.roomStream(room), this.#keys.roomTrimmed(room),
      this.#keys.roomChannel(room), this.#historySize, this.#trimBatch,
      message.ts, message.head, message.body, PUBLISH,
    ));
  }

  async history(room: string, before: string | undefined, limit: number): Promise<StoredMessage[]> {
    if (before === MIN_STREAM_ID) return [];
    const end = before === undefined ? '+' : `(${before}`;
    const raw = await this.#call(() => this.#command.xrevrange(this.#keys.roomStream(room), end, '-', 'COUNT', limit));
    return toStoredOldestFirst(raw as RawEntry[]);
  }

  async after(room: string, after: string, limit: number): Promise<RangeResult> {
    const [trimmed, newest, raw] = await this.#call(() => this.#command.chatAfter(
      this.#keys.roomStream(room), this.#keys.roomTrimmed(room), after === MAX_STREAM_ID ? BEFORE_MAX_STREAM_ID : after, limit + 1,
    ));
    const complete = raw.length <= limit && compareIds(trimmed, after) <= 0;
    return { messages: toStoredOldestFirst(raw.slice(0, limit)), complete, newest };
  }

  async presenceJoin(room: string, user: string): Promise<string[]> {
    let held = this.#presence.get(room);
    if (held === undefined) this.#presence.set(room, (held = new Set()));
    held.add(user);
    return this.#call(() => this.#presenceJoinScript(room, user));
  }

  async presenceLeave(room: string, user: string): Promise<void> {
    const held = this.#presence.get(room);
    held?.delete(user);
    if (held?.size === 0) this.#presence.delete(room);
    await this.#call(() => this.#command.chatPresenceLeave(
      ...this.#presenceKeys(room), this.#incarnation, user, this.#keys.roomChannel(room), PUBLISH,
    ));
  }

  async publishRoomEvent(room: string, user: string, frame: string): Promise<void> {
    await this.#call(() => this.#command.publish(this.#keys.roomChannel(room), encodeRoomEvent(user, frame)));
  }

  async sendDirect(to: string, head: string, body: string): Promise<{ id: string; receivers: number }> {
    const [id, receivers] = await this.#call(() => this.#command.chatDirect(
      this.#keys.directSequence(to), this.#keys.userChannel(to), head, body, DIRECT_SEQUENCE_TTL_MS, PUBLISH,
    ));
    return { id, receivers };
  }

  async publishToUser(user: string, frame: string): Promise<void> {
    await this.#call(() => this.#command.publish(this.#keys.userChannel(user), encodeUserPayload(frame)));
  }

  async #subscribe(channel: string, subscription: Subscription, forgetOnFailure: boolean): Promise<void> {
    this.#channels.set(channel, subscription);
    try {
      await whenReady(this.#subscriber, this.#connectWaitMs);
      await this.#subscriber.subscribe(channel);
    } catch (err) {
      if (forgetOnFailure && this.#channels.get(channel) === subscription) {
        this.#channels.delete(channel);
        this.#subscriber.unsubscribe(channel).catch(() => {});
      }
      throw toBrokerError(err);
    }
  }

  async #unsubscribe(channel: string): Promise<void> {
    if (!this.#channels.delete(channel)) return;
    // A failure leaves a subscription whose messages #onPayload ignores; the next reconnect drops it.
    await this.#subscriber.unsubscribe(channel).catch(() => {});
  }

  #onPayload(channel: Buffer, payload: Buffer): void {
    const subscription = this.#channels.get(channel.toString('latin1'));
    const listener = this.#listener;
    if (subscription === undefined || listener === null) return;
    if (subscription.kind === 'user') {
      const frame = decodeUserPayload(payload);
      if (frame !== null) listener.onUserFrame(subscription.name, frame);
      return;
    }
    const room = subscription.name;
    const decoded = decodeRoomPayload(payload);
    switch (decoded?.kind) {
      case 'message':
        return listener.onRoomMessage(room, decoded.id, decoded.ts, decoded.frame);
      case 'presence':
        return listener.onPresence(room, decoded.user, decoded.online);
      case 'event':
        return listener.onRoomEvent(room, decoded.user, decoded.frame);
      default:
        this.#log.warn({ room }, 'ignored a malformed room payload');
    }
  }

  #presenceKeys(room: string): [nodes: string, users: string, nodeSet: string] {
    return [
      this.#keys.presenceNodes(room),
      this.#keys.presenceUsers(room),
      this.#keys.presenceNodePrefix(room) + this.#incarnation,
    ];
  }

  #presenceJoinScript(room: string, user: string): Promise<string[]> {
    return this.#command.chatPresenceJoin(
      ...this.#presenceKeys(room), this.#incarnation, user, this.#presenceTtlMs, this.#presenceTtlMs * 3,
      this.#keys.presenceNodePrefix(room), this.#keys.roomChannel(room), PUBLISH,
    );
  }

  /** Keeps this node's presence alive, reaps dead nodes, and re-announces what Redis lost. */
  async #heartbeat(): Promise<void> {
    if (this.#command.status !== 'ready') return;
    await Promise.all([...this.#presence].map(async ([room, users]) => {
      try {
        const alive = await this.#command.chatPresenceHeartbeat(
          ...this.#presenceKeys(room), this.#incarnation, this.#presenceTtlMs, this.#presenceTtlMs * 3,
          this.#keys.presenceNodePrefix(room), this.#keys.roomChannel(room), PUBLISH,
        );
        if (alive === 1 || users.size === 0) return;
        this.#log.warn({ room, users: users.size }, 'presence was lost (reaped or Redis restarted); re-announcing');
        for (const user of [...users]) await this.#presenceJoinScript(room, user);
      } catch (err) {
        this.#log.debug({ err, room }, 'presence heartbeat failed');
      }
    }));
  }

  async #resubscribe(): Promise<void> {
    const generation = ++this.#subscriberGeneration;
    const channels = [...this.#channels.keys()];
    try {
      for (let i = 0; i < channels.length; i += SUBSCRIBE_BATCH) {
        await this.#subscriber.subscribe(...channels.slice(i, i + SUBSCRIBE_BATCH));
      }
      if (generation !== this.#subscriberGeneration) return;
      this.#subscriberLive = true;
      if (channels.length > 0) this.#log.info({ channels: channels.length }, 'redis subscriptions restored');
    } catch (err) {
      // The connection dropped again; its next 'ready' retries.
      this.#log.warn({ err }, 'redis resubscription failed');
    }
    this.#refresh();
  }

  async #checkHealth(): Promise<void> {
    if (this.#command.status !== 'ready') return;
    try {
      await this.#command.ping();
      this.#commandHealthy = true;
    } catch (err) {
      if (this.#commandHealthy) this.#log.warn({ err }, 'redis health check failed');
      this.#commandHealthy = false;
    }
    this.#refresh();
  }

  #refresh(): void {
    const up = this.#listener !== null
      && this.#command.status === 'ready'
      && this.#commandHealthy
      && this.#subscriberLive;
    if (up === this.#up) return;
    this.#up = up;
    if (up) {
      this.#log.info({}, 'broker up');
      void this.#heartbeat(); // re-announce presence at once if Redis lost it
    } else {
      this.#log.warn({ command: this.#command.status, subscriber: this.#subscriber.status }, 'broker down');
    }
    this.#listener?.onStatus(up);
  }

  async #call<T>(operation: () => Promise<T>): Promise<T> {
    try {
      await whenReady(this.#command, this.#connectWaitMs);
      return await operation();
    } catch (err) {
      throw toBrokerError(err);
    }
  }

  #every(ms: number, task: () => Promise<void>): void {
    const timer = setInterval(() => void task(), ms);
    timer.unref();
    this.#timers.push(timer);
  }
}

/**
 * Waits for a connection that is (re)connecting, so calls ride out a start-up or a
 * short blip; fails as unavailable after `timeoutMs`. (ioredis's offline queue is
 * off on purpose: it could run a command after its caller was told it failed.)
 */
function whenReady(redis: Redis, timeoutMs: number): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve();
  if (redis.status === 'end') return Promise.reject(new BrokerUnavailableError('redis connection closed'));
  return new Promise((resolve, reject) => {
    const onReady = (): void => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      redis.off('ready', onReady);
      reject(new BrokerUnavailableError(`redis not reachable within ${timeoutMs} ms`));
    }, timeoutMs);
    redis.once('ready', onReady);
  });
}

function toStoredOldestFirst(raw: RawEntry[]): StoredMessage[] {
  const out = new Array<StoredMessage>(raw.length);
  for (let i = 0; i < raw.length; i++) {
    const [id, fields] = raw[raw.length - 1 - i]!;
    out[i] = { id, body: fields[fields.indexOf('b') + 1] ?? '' };
  }
  return out;
}

function toBrokerError(err: unknown): Error {
  if (err instanceof BrokerUnavailableError || err instanceof BrokerCommandError) return err;
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof ReplyError && !TRANSIENT_REPLY.test(message)) {
    return new BrokerCommandError(message, { cause: err });
  }
  return new BrokerUnavailableError(message, { cause: err });
}
