import { randomBytes } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import type {
  AppendRequest, AppendResult, Broker, BrokerListener, BrokerStats, DirectRequest, DirectResult, RangeResult, StoredMessage, StreamHead,
} from '../broker.js';
import type { EventRecording } from '../cluster-events.js';
import type { MessageChanges } from '../changes.js';
import { BrokerNotReplicatedError, NotAMemberError, RestrictedError } from '../errors.js';
import { rangeGap } from '../continuity.js';
import { BEFORE_MAX_STREAM_ID, MAX_STREAM_ID, MIN_STREAM_ID } from '../ids.js';
import { silentLog, type BrokerLog } from '../log.js';
import type { Presence } from '../presence.js';
import { trimBatch } from '../trim.js';
import { SlotKeys } from './slot-keys.js';
import { EventRecorder } from './event-recorder.js';
import { RedisRoomPresence } from './room-presence.js';
import { RedisUserPresence } from './user-presence.js';
import { decodeRoomPayload, decodeUserPayload, encodeRoomEvent, encodeUserCommand, encodeUserPayload } from './envelope.js';
import type { KeySpace } from './keys.js';
import type { PubSub } from './pubsub.js';
import { callRedis, toBrokerError } from './ready.js';
import { appendScript, type AppendArgs, type AppendSettings } from './append-script.js';
import { RedisMessageChanges } from './changes.js';
import { storedEntry } from './entries.js';
import { defineScripts, type ChatScripts, type EventArgs, type RawEntry } from './scripts.js';

export interface RedisBrokerOptions {
  /**
   * Owned by the caller, who also closes them (see createRedisClients). One
   * broker per command connection: the broker defines its append script on it,
   * with its settings in it.
   */
  command: Redis | Cluster;
  pubsub: PubSub;
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
  /**
   * Replicas that must have an appended message before `append` resolves (WAIT);
   * 0 acknowledges once the primary has it.
   */
  waitReplicas?: number;
  /** How long an append waits for those replicas before it fails as unavailable. */
  waitTimeoutMs?: number;
  /** How long an idempotency key is remembered after its last use. */
  idempotencyTtlMs?: number;
  /**
   * Mark every appended room for the archiver (see RedisArchiveFeed), and trim
   * no message it has not taken, up to `hold` messages beyond the history size.
   */
  archive?: { hold: number };
  /** Cluster events to record for an EventFeed reader (webhooks); none by default. */
  events?: EventRecording;
  /** Mark members-only rooms due for telling offline members of unread messages (see OfflineNotices), this long after a message. */
  unreadWindowMs?: number;
  log?: BrokerLog;
}

const DIRECT_SEQUENCE_TTL_MS = 24 * 3600 * 1000;

type Subscription = { kind: 'room' | 'user' | 'node'; name: string };
/** The append script, defined by each broker with its settings (see append-script.ts); repeat 2 is a refusal. */
interface AppendCommand {
  chatAppend(...args: AppendArgs | [...AppendArgs, ...EventArgs]): Promise<[id: string, ts: string, repeat: number]>;
}
type Command = (Redis | Cluster) & ChatScripts & AppendCommand;

export class RedisBroker implements Broker {
  readonly #command: Command;
  readonly #pubsub: PubSub;
  /** PUBLISH, or SPUBLISH on Redis Cluster: handed to the scripts. */
  readonly #publish: string;
  readonly #waitReplicas: number;
  readonly #waitTimeoutMs: number;
  readonly #idempotencyTtlMs: number;
  readonly #archiveSets: SlotKeys | undefined;
  readonly #unreadDue: SlotKeys | undefined;
  readonly #keys: KeySpace;
  readonly #incarnation: string;
  readonly #presenceTtlMs: number;
  readonly #healthCheckMs: number;
  readonly #connectWaitMs: number;
  readonly #log: BrokerLog;

  /** channel -> what it carries, for everything this node wants; the source of truth for resubscribing. */
  readonly #channels = new Map<string, Subscription>();
  readonly #events: EventRecorder;
  readonly presence: Presence = {
    join: (room, user, options = {}) => this.#roomPresence.set(room, user, options.connections ?? 1, options.list ?? 0),
    leave: async (room, user) => { await this.#roomPresence.set(room, user, 0); },
    members: (room, after, limit) => this.#roomPresence.members(room, after, limit),
    setUserConnections: (user, connections) => this.#userPresence.set(user, connections),
  };
  /**
   * Edits, deletes and reactions of this broker's messages: stored and published as
   * its appends are, with its settings (in memory: MemoryMessageChanges over the hub).
   */
  readonly changes: MessageChanges;
  readonly #roomPresence: RedisRoomPresence;
  readonly #userPresence: RedisUserPresence;
  #listener: BrokerListener | null = null;
  #up = false;
  #wasUp = false;
  #commandHealthy = true;
  #timers: NodeJS.Timeout[] = [];
  readonly #counts = { probeFailures: 0, replicationTimeouts: 0 };

  constructor(options: RedisBrokerOptions) {
    const { keys } = options;
    const sharded = options.pubsub.publishCommand === 'SPUBLISH';
    this.#command = defineScripts(options.command) as Command;
    const settings: AppendSettings = {
      historySize: options.historySize,
      trimBatch: trimBatch(options.historySize),
      publish: options.pubsub.publishCommand,
      onceTtlMs: options.idempotencyTtlMs ?? 600_000,
      archive: options.archive && { wake: keys.archiveWake(), hold: options.archive.hold },
      unread: options.unreadWindowMs === undefined ? undefined : { windowMs: options.unreadWindowMs, wake: keys.unreadWake() },
    };
    this.#command.defineCommand('chatAppend', appendScript(settings));
    this.#pubsub = options.pubsub;
    this.#publish = options.pubsub.publishCommand;
    this.#waitReplicas = options.waitReplicas ?? 0;
    this.#waitTimeoutMs = options.waitTimeoutMs ?? 1000;
    this.#idempotencyTtlMs = options.idempotencyTtlMs ?? 600_000;
    this.#archiveSets = options.archive ? new SlotKeys((tag) => keys.archiveDirty(tag), sharded) : undefined;
    this.#unreadDue = options.unreadWindowMs === undefined ? undefined : new SlotKeys((tag) => keys.unreadDue(tag), sharded);
    this.#keys = keys;
    this.#incarnation = `${options.nodeId ?? 'node'}.${randomBytes(4).toString('hex')}`;
    this.#presenceTtlMs = options.presenceTtlMs ?? 10_000;
    this.#healthCheckMs = options.healthCheckMs ?? 1000;
    this.#connectWaitMs = options.connectWaitMs ?? 2000;
    this.#log = options.log ?? silentLog;
    this.#events = new EventRecorder(options.keys, options.events, sharded, this.#incarnation);
    this.changes = new RedisMessageChanges({
      command: this.#command, keys, settings, events: this.#events, archiveSets: this.#archiveSets, waitMs: this.#connectWaitMs,
    });
    const presence = {
      command: this.#command, keys: options.keys, incarnation: this.#incarnation, ttlMs: this.#presenceTtlMs, events: this.#events, log: this.#log,
      call: <T>(operation: () => Promise<T>) => this.#call(operation),
    };
    this.#roomPresence = new RedisRoomPresence({ ...presence, publish: this.#publish });
    this.#userPresence = new RedisUserPresence({ ...presence, rooms: this.#roomPresence });
  }

  get up(): boolean {
    return this.#up;
  }

  stats(): BrokerStats {
    return {
      subscriberConnections: this.#pubsub.connectionCount,
      deafSubscribers: this.#pubsub.deafCount,
      ...this.#counts,
    };
  }

  start(listener: BrokerListener): void {
    this.#listener = listener;
    const command = this.#command;
    command.on('ready', () => this.#refresh());
    command.on('close', () => this.#refresh());
    command.on('error', (err: Error) => this.#log.debug({ err, connection: 'command' }, 'redis connection error'));
    this.#pubsub.start({
      message: (channel, payload) => this.#onPayload(channel, payload),
      change: () => this.#refresh(),
      deaf: () => this.#counts.probeFailures++,
    });
    this.#every(this.#healthCheckMs, () => this.#checkHealth());
    this.#every(Math.max(50, Math.floor(this.#presenceTtlMs / 4)), () => this.#heartbeat());
    this.#refresh();
  }

  /** Withdraws this node's presence (others see `offline` at once), then stops. */
  async close(): Promise<void> {
    for (const timer of this.#timers) clearInterval(timer);
    if (this.#command.status === 'ready') {
      await this.#roomPresence.withdrawNode(this.#incarnation)
        .then(() => this.#userPresence.close())
        .catch((err: unknown) => this.#log.warn({ err }, 'presence withdrawal failed'));
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

  subscribeNode(node: string): Promise<void> {
    return this.#subscribe(this.#keys.nodeChannel(node), { kind: 'node', name: node }, false);
  }

  sendToNode(node: string, payload: string): Promise<number> {
    return this.#call(() => this.#publishTo(this.#keys.nodeChannel(node), payload));
  }

  append(message: AppendRequest): Promise<AppendResult> {
    const { room, idempotencyKey } = message;
    const keys = this.#keys;
    const stream = keys.roomStream(room);
    const archive = this.#archiveSets;
    const args: AppendArgs = [
      stream, keys.roomTrimmed(room), keys.roomLost(room),
      idempotencyKey === undefined ? stream : keys.roomOnce(room, idempotencyKey),
      archive === undefined ? stream : archive.of(stream),
      archive === undefined ? stream : keys.roomArchived(room),
      this.#events.streamOf(stream), keys.roomConversation(room), keys.roomMembers(room), keys.roomReads(room), this.#unreadDue?.of(stream) ?? stream,
      keys.roomModeration(room), keys.roomChanges(room),
      keys.roomChannel(room), message.ts, message.head, message.body, message.lastDelivered ?? '', room, message.user,
      idempotencyKey === undefined ? '' : 'k',
    ];
    // Without recording the four event arguments are left out: every argument costs Redis a little on each append.
    const send = (target: AppendCommand) => (this.#events.on ? target.chatAppend(...args, ...this.#events.args()) : target.chatAppend(...args));
    if (this.#waitReplicas === 0) return this.#call(async () => appendResult(await send(this.#command), message));
    return this.#call(() => this.#appendReplicated(send, message));
  }

  /**
   * The append and a WAIT in one pipeline: same connection, same primary (on a
   * cluster the pipeline goes to the room's shard), so WAIT covers this write.
   */
  async #appendReplicated(send: (target: AppendCommand) => unknown, message: AppendRequest): Promise<AppendResult> {
    const pipeline = this.#command.pipeline() as unknown as AppendCommand & { wait(n: number, ms: number): unknown; exec(): Promise<Array<[Error | null, unknown]> | null> };
    send(pipeline);
    pipeline.wait(this.#waitReplicas, this.#waitTimeoutMs);
    const [[appendError, reply], [waitError, replicas]] = (await pipeline.exec()) as [[Error | null, [string, string, number]], [Error | null, number]];
    if (appendError !== null) throw appendError;
    if (waitError !== null) throw waitError;
    const result = appendResult(reply, message); // a refusal wrote nothing: no replica to wait for
    if (replicas < this.#waitReplicas) {
      this.#counts.replicationTimeouts++;
      throw new BrokerNotReplicatedError(result.id,
        `message ${result.id} is on the primary but reached ${replicas} of ${this.#waitReplicas} replicas within ${this.#waitTimeoutMs} ms; it may not survive a failover`,
      );
    }
    return result;
  }

  /**
   * A room that never had a change is read as it is (one XREVRANGE, with a look
   * at whether that is still so in the same round trip); one that had is read
   * by the page script, which puts every change in place. A script's reply
   * costs Redis a Lua table per entry, so plain rooms do not pay for it.
   */
  async history(room: string, before: string | undefined, limit: number, reader = ''): Promise<StoredMessage[]> {
    if (before === MIN_STREAM_ID) return [];
    const keys = this.#keys;
    const raw = await this.#call(async () => {
      const [[changedError, changed], [pageError, page]] = (await this.#command.pipeline()
        .exists(keys.roomChanges(room))
        .xrevrange(keys.roomStream(room), before === undefined ? '+' : `(${before}`, '-', 'COUNT', limit)
        .exec()) as [[Error | null, number], [Error | null, RawEntry[]]];
      if (changedError !== null) throw changedError;
      if (pageError !== null) throw pageError;
      if (changed === 0) return page;
      return this.#command.chatHistory(keys.roomStream(room), keys.roomTrimmed(room), keys.roomChanges(room), keys.roomChangeMarks(room), before ?? '', limit, reader);
    });
    return toStoredOldestFirst(raw);
  }

  async after(room: string, after: string, limit: number): Promise<RangeResult> {
    const keys = this.#keys;
    const [trimmed, lost, newest, stored, raw] = await this.#call(() => this.#command.chatAfter(
      keys.roomStream(room), keys.roomTrimmed(room), keys.roomLost(room), keys.roomChanges(room), keys.roomChangeMarks(room),
      after, after === MAX_STREAM_ID ? BEFORE_MAX_STREAM_ID : after, limit + 1,
    ));
    const gap = rangeGap(after, { trimmed, lost, afterStored: stored > 0 }, raw.length, limit);
    const messages = toStoredOldestFirst(raw.slice(0, limit));
    return gap === undefined ? { messages, newest, lost } : { messages, gap, newest, lost };
  }

  async streamHead(room: string): Promise<StreamHead> {
    const [newest, lost] = await this.#call(() => this.#command.chatHead(this.#keys.roomStream(room), this.#keys.roomLost(room)));
    return { newest, lost };
  }

  async markLost(room: string, upTo: string): Promise<void> {
    await this.#call(() => this.#command.chatMarkLost(this.#keys.roomLost(room), upTo, this.#keys.roomChannel(room), this.#publish));
  }

  sendUserCommand(user: string, command: string): Promise<number> {
    return this.#call(() => this.#publishTo(this.#keys.userChannel(user), encodeUserCommand(command)));
  }

  async publishRoomEvent(room: string, user: string, frame: string): Promise<void> {
    await this.#call(() => this.#publishTo(this.#keys.roomChannel(room), encodeRoomEvent(user, frame)));
  }

  async sendDirect({ to, head, body, ts, idempotencyKey }: DirectRequest): Promise<DirectResult> {
    const sequence = this.#keys.directSequence(to);
    const [id, storedTs, repeat, receivers] = await this.#call(() => this.#command.chatDirect(
      sequence, idempotencyKey === undefined ? sequence : this.#keys.directOnce(to, idempotencyKey),
      this.#keys.userChannel(to), head, body, DIRECT_SEQUENCE_TTL_MS, this.#publish,
      ts, idempotencyKey === undefined ? '' : this.#idempotencyTtlMs,
    ));
    return { id, ts: Number(storedTs), receivers, repeat: repeat === 1 };
  }

  async publishToUser(user: string, frame: string): Promise<void> {
    await this.#call(() => this.#publishTo(this.#keys.userChannel(user), encodeUserPayload(frame)));
  }

  #publishTo(channel: string, payload: string): Promise<number> {
    return (this.#publish === 'SPUBLISH' ? this.#command.spublish(channel, payload) : this.#command.publish(channel, payload)) as Promise<number>;
  }

  async #subscribe(channel: string, subscription: Subscription, forgetOnFailure: boolean): Promise<void> {
    this.#channels.set(channel, subscription);
    try {
      await this.#pubsub.subscribe(channel, this.#connectWaitMs);
    } catch (err) {
      if (forgetOnFailure && this.#channels.get(channel) === subscription) {
        this.#channels.delete(channel);
        this.#pubsub.unsubscribe(channel).catch(() => {});
      }
      throw toBrokerError(err);
    }
  }

  async #unsubscribe(channel: string): Promise<void> {
    if (!this.#channels.delete(channel)) return;
    // A failure leaves a subscription whose messages #onPayload ignores; the next reconnect drops it.
    await this.#pubsub.unsubscribe(channel).catch(() => {});
  }

  #onPayload(channel: Buffer, payload: Buffer): void {
    const subscription = this.#channels.get(channel.toString('latin1'));
    const listener = this.#listener;
    if (subscription === undefined || listener === null) return;
    if (subscription.kind === 'node') return listener.onNodeMessage(payload);
    if (subscription.kind === 'user') {
      const decoded = decodeUserPayload(payload);
      if (decoded?.kind === 'frame') listener.onUserFrame(subscription.name, decoded.frame);
      else if (decoded?.kind === 'command') listener.onUserCommand(subscription.name, decoded.command);
      return;
    }
    const room = subscription.name;
    const decoded = decodeRoomPayload(payload);
    switch (decoded?.kind) {
      case 'message':
        return listener.onRoomMessage(room, decoded.id, decoded.ts, decoded.frame, decoded.prev, decoded.counted);
      case 'presence':
        return listener.onPresence(room, decoded.change);
      case 'event':
        return listener.onRoomEvent(room, decoded.user, decoded.frame);
      case 'loss':
        return listener.onRoomLoss(room, decoded.upTo);
      default:
        this.#log.warn({ room }, 'ignored a malformed room payload');
    }
  }

  /** Keeps this node alive, reaps dead nodes, and writes again the presence Redis may have lost. */
  async #heartbeat(): Promise<void> {
    if (this.#command.status !== 'ready') return;
    await Promise.all([this.#roomPresence.heartbeat(), this.#userPresence.heartbeat()]);
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
      && this.#pubsub.live
      && this.#pubsub.deafCount === 0;
    if (up === this.#up) return;
    this.#up = up;
    if (up) {
      this.#log.info({}, 'broker up');
      // Back from an outage: Redis may have failed over to a replica that lacked the latest presence writes.
      if (this.#wasUp) this.#roomPresence.resyncAll();
      this.#wasUp = true;
      void this.#heartbeat(); // and re-announce everything at once if Redis lost this node
    } else if (this.#listener === null) {
      this.#log.info({}, 'broker closed'); // close() let go of it: not an outage
    } else {
      this.#log.warn({ command: this.#command.status, subscribers: this.#pubsub.describe() }, 'broker down');
    }
    this.#listener?.onStatus(up);
  }

  #call<T>(operation: () => Promise<T>): Promise<T> {
    return callRedis(this.#command, this.#connectWaitMs, operation);
  }

  #every(ms: number, task: () => Promise<void>): void {
    const timer = setInterval(() => void task(), ms);
    timer.unref();
    this.#timers.push(timer);
  }
}

/**
 * The append script's answer; `repeat` 2 means the sender is not a member of a
 * members-only room, 3 and 4 that a moderator banned or muted them (`ts` holds the reason).
 */
function appendResult([id, ts, repeat]: [string, string, number], { room, user }: AppendRequest): AppendResult {
  if (repeat === 2) throw new NotAMemberError(room, user);
  if (repeat === 3 || repeat === 4) throw new RestrictedError(repeat === 3 ? 'ban' : 'mute', ts);
  return { id, ts: Number(ts), repeat: repeat === 1 };
}

function toStoredOldestFirst(raw: RawEntry[]): StoredMessage[] {
  const out = new Array<StoredMessage>(raw.length);
  for (let i = 0; i < raw.length; i++) {
    const [id, fields] = raw[raw.length - 1 - i]!;
    out[i] = storedEntry(id, fields);
  }
  return out;
}
