import type { EventRecording } from '../cluster-events.js';
import type { ClusterEventType } from '../cluster-events.js';
import type { MemberPage, Presence, RoomHeadcount } from '../presence.js';
import { RevocationTable } from '../revocations.js';
import type {
  AppendRequest, AppendResult, Broker, BrokerListener, BrokerStats, CountedMessage, DirectRequest, DirectResult, RangeResult, StoredChange, StoredMessage, StreamHead,
} from '../broker.js';
import { rangeGap } from '../continuity.js';
import { BrokerUnavailableError, NotAMemberError, RestrictedError } from '../errors.js';
import { MIN_STREAM_ID, compareStreamIds } from '../ids.js';
import { trimBatch } from '../trim.js';
import { MemoryEventLog, MemoryEventRecorder } from './memory-events.js';
import { RoomChanges } from './room-changes.js';
import { MemoryConversation } from './memory-conversation.js';
import { SortedNames } from './sorted-names.js';

const encoder = new TextEncoder();

/** Same rule as a Redis stream's `*` id: time-based, strictly increasing. */
class IdSequence {
  #lastMs = 0;
  #lastSeq = 0;

  next(): string {
    const now = Date.now();
    if (now > this.#lastMs) {
      this.#lastMs = now;
      this.#lastSeq = 0;
    } else {
      this.#lastSeq++;
    }
    return `${this.#lastMs}-${this.#lastSeq}`;
  }
}

class MemoryRoom {
  readonly messages: StoredMessage[] = [];
  readonly subscribers = new Set<MemoryBroker>();
  /** user -> brokers (nodes) that have the user present in the room -> connections joined there */
  readonly presence = new Map<string, Map<MemoryBroker, number>>();
  /** The same users in id order, for pages. */
  readonly present = new SortedNames();
  /** The number of the last arrival or departure (see PresenceChange.seq). */
  presenceSeq = 0;
  readonly ids = new IdSequence();
  trimmed = MIN_STREAM_ID;
  lost = MIN_STREAM_ID;
  /** Set once the room is members-only (see MemoryMembership). */
  conversation: MemoryConversation | undefined;
  /** Edits, deletes, reactions and moderation (see MemoryMessageChanges). */
  readonly changes = new RoomChanges();
  /** How many of `messages` are changes: trimming counts messages only. */
  changeEntries = 0;

  membersOnly(): MemoryConversation {
    return (this.conversation ??= new MemoryConversation());
  }

  /** Whether `user` may post and be present here: anyone in an open room, members in a members-only one. */
  admits(user: string): boolean {
    return this.conversation === undefined || this.conversation.members.has(user);
  }

  /** The newest message in its current version (a room list's preview): changes and deleted messages skipped. */
  newestMessage(): StoredMessage | undefined {
    for (let i = this.messages.length - 1; i >= 0; i--) {
      const entry = this.messages[i]!;
      if (entry.change === undefined && !this.changes.gone.has(entry.id)) return this.changes.current(entry, '');
    }
    return undefined;
  }

  /** Index of the first message newer than `id`. */
  firstAfter(id: string): number {
    let start = this.messages.length;
    while (start > 0 && compareStreamIds(this.messages[start - 1]!.id, id) > 0) start--;
    return start;
  }
}

class MemoryUser {
  readonly subscribers = new Set<MemoryBroker>();
  readonly directIds = new IdSequence();
  /** broker (node) -> the user's connections there */
  readonly connections = new Map<MemoryBroker, number>();
  /** The user's members-only rooms (their index). */
  readonly conversations = new Set<string>();
}

interface OnceRecord {
  id: string;
  ts: number;
  expiresAt: number;
}

/**
 * Idempotency records with an expiry. Insertion order is expiry order (every
 * record lives the same time, and a renewed one moves to the end), so expired
 * records are dropped from the front as new ones come.
 */
class OnceRecords {
  readonly #records = new Map<string, OnceRecord>();

  /** The record of `key`, renewed for `ttlMs`, or undefined. */
  seen(key: string, ttlMs: number, now: number): OnceRecord | undefined {
    this.#expire(now);
    const record = this.#records.get(key);
    if (record === undefined) return undefined;
    this.#records.delete(key);
    record.expiresAt = now + ttlMs;
    this.#records.set(key, record);
    return record;
  }

  record(key: string, id: string, ts: number, ttlMs: number, now: number): void {
    this.#records.delete(key);
    this.#records.set(key, { id, ts, expiresAt: now + ttlMs });
  }

  #expire(now: number): void {
    for (const [key, record] of this.#records) {
      if (record.expiresAt > now) return;
      this.#records.delete(key);
    }
  }
}

/** State shared by every MemoryBroker of one process: what Redis is to RedisBrokers. */
export class MemoryHub {
  readonly #rooms = new Map<string, MemoryRoom>();
  readonly #users = new Map<string, MemoryUser>();
  /** node inbox -> the broker subscribed to it */
  readonly nodes = new Map<string, MemoryBroker>();
  readonly once = new OnceRecords();
  /** Members-only rooms -> when their offline members are due to be told of unread messages (see OfflineNotices). */
  readonly unreadDue = new Map<string, number>();
  readonly events = new MemoryEventLog();
  readonly revocations = new RevocationTable();

  roomNames(): string[] {
    return [...this.#rooms.keys()];
  }

  /** Rooms with a member, by name. */
  occupiedRooms(): Array<[name: string, room: MemoryRoom]> {
    return [...this.#rooms].filter(([, room]) => room.presence.size > 0).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  }

  /** The user's state, if the user was ever seen. */
  findUser(name: string): MemoryUser | undefined {
    return this.#users.get(name);
  }

  room(name: string): MemoryRoom {
    let room = this.#rooms.get(name);
    if (room === undefined) this.#rooms.set(name, (room = new MemoryRoom()));
    return room;
  }

  user(name: string): MemoryUser {
    let user = this.#users.get(name);
    if (user === undefined) this.#users.set(name, (user = new MemoryUser()));
    return user;
  }

  /** Simulates, for tests, a failover onto a replica that lacked the room's newest `count` messages. */
  loseNewest(room: string, count: number): void {
    const messages = this.room(room).messages;
    messages.splice(Math.max(0, messages.length - count));
  }

  /** Simulates, for tests, a Redis restart without persistence: every stored message and marker is gone. */
  forgetStored(): void {
    for (const room of this.#rooms.values()) {
      room.messages.length = 0;
      room.trimmed = MIN_STREAM_ID;
      room.lost = MIN_STREAM_ID;
    }
  }
}

export interface MemoryBrokerOptions {
  historySize: number;
  /** Share one hub between brokers to model several nodes in one process. */
  hub?: MemoryHub;
  /** Delays deliveries to this broker, as pub/sub lags behind commands in Redis (tests). */
  deliveryDelayMs?: number;
  /** How long an idempotency key is remembered after its last use. */
  idempotencyTtlMs?: number;
  /** Cluster events to record in the hub's log (see MemoryEventFeed); none by default. */
  events?: EventRecording;
  /** Mark members-only rooms due for telling offline members of unread messages, this long after a message. */
  unreadWindowMs?: number;
}

/** A single-process broker: used when no Redis is configured, and in unit tests. */
export class MemoryBroker implements Broker {
  readonly presence: Presence = {
    join: (room, user, options = {}) => this.#presenceJoin(room, user, options.connections ?? 1, options.list ?? 0),
    leave: (room, user) => this.#presenceLeave(room, user),
    members: (room, after, limit) => this.#members(room, after, limit),
    setUserConnections: (user, connections) => this.#setUserConnections(user, connections),
  };
  readonly #hub: MemoryHub;
  readonly #historySize: number;
  readonly #trimBatch: number;
  readonly #deliveryDelayMs: number;
  readonly #unreadWindowMs: number | undefined;
  readonly #idempotencyTtlMs: number;
  readonly #rooms = new Set<string>();
  readonly #users = new Set<string>();
  /** Node inboxes this broker receives (see subscribeNode). */
  readonly #nodes = new Set<string>();
  /** room -> users this broker holds present there */
  readonly #presence = new Map<string, Set<string>>();
  /** users with a connection through this broker */
  readonly #connected = new Set<string>();
  readonly #events: MemoryEventRecorder;
  #listener: BrokerListener | null = null;
  #available = true;
  #dropping = 0;
  #reported = false;

  constructor(options: MemoryBrokerOptions) {
    this.#hub = options.hub ?? new MemoryHub();
    this.#historySize = options.historySize;
    this.#trimBatch = trimBatch(options.historySize);
    this.#deliveryDelayMs = options.deliveryDelayMs ?? 0;
    this.#unreadWindowMs = options.unreadWindowMs;
    this.#idempotencyTtlMs = options.idempotencyTtlMs ?? 600_000;
    this.#events = new MemoryEventRecorder(this.#hub.events, options.events);
  }

  get up(): boolean {
    return this.#listener !== null && this.#available;
  }

  stats(): BrokerStats {
    return { subscriberConnections: 0, deafSubscribers: 0, probeFailures: 0, replicationTimeouts: 0 };
  }

  start(listener: BrokerListener): void {
    this.#listener = listener;
    queueMicrotask(() => this.#report());
  }

  /** Withdraws this node's presence (others see `offline`), then stops. */
  async close(): Promise<void> {
    for (const [room, users] of this.#presence) for (const user of [...users]) this.#withdraw(room, user);
    for (const user of [...this.#connected]) this.#setConnections(user, 0);
    for (const room of this.#rooms) this.#hub.room(room).subscribers.delete(this);
    for (const user of this.#users) this.#hub.user(user).subscribers.delete(this);
    for (const node of this.#nodes) if (this.#hub.nodes.get(node) === this) this.#hub.nodes.delete(node);
    this.#nodes.clear();
    this.#rooms.clear();
    this.#users.clear();
    this.#listener = null;
  }

  /**
   * Simulates, for tests, a subscription that silently misses the next `count` room
   * messages while everything else works (a deaf subscriber).
   */
  dropRoomMessages(count: number): void {
    this.#dropping = count;
  }

  /** Simulates an outage, for tests: while unavailable every call fails as a RedisBroker's would. */
  setAvailable(available: boolean): void {
    if (available === this.#available) return;
    this.#available = available;
    this.#report();
  }

  /** Reports changes only, as RedisBroker does. */
  #report(): void {
    if (this.up === this.#reported) return;
    this.#reported = this.up;
    this.#listener?.onStatus(this.up);
  }

  async subscribeRoom(room: string): Promise<void> {
    this.#check();
    this.#rooms.add(room);
    this.#hub.room(room).subscribers.add(this);
  }

  async unsubscribeRoom(room: string): Promise<void> {
    this.#rooms.delete(room);
    this.#hub.room(room).subscribers.delete(this);
  }

  async append(message: AppendRequest): Promise<AppendResult> {
    this.#check();
    const room = this.#hub.room(message.room);
    if (!room.admits(message.user)) throw new NotAMemberError(message.room, message.user);
    const restriction = room.changes.restrictions.get(message.user);
    if (restriction !== undefined) throw new RestrictedError(restriction.kind, restriction.reason);
    const once = message.idempotencyKey === undefined ? undefined : `room/${message.room}/${message.idempotencyKey}`;
    const first = once === undefined ? undefined : this.#hub.once.seen(once, this.#idempotencyTtlMs, Date.now());
    if (first !== undefined) return { id: first.id, ts: first.ts, repeat: true };
    const id = this.#store(message, message.body, undefined, (stored) => {
      if (room.conversation === undefined) return undefined;
      if (this.#unreadWindowMs !== undefined && !this.#hub.unreadDue.has(message.room)) this.#hub.unreadDue.set(message.room, Date.now() + this.#unreadWindowMs);
      return { number: room.conversation.count(stored, message.user), user: message.user };
    });
    if (once !== undefined) this.#hub.once.record(once, id, message.ts, this.#idempotencyTtlMs, Date.now());
    this.#events.record('message.created', `{"room":${JSON.stringify(message.room)},"message":${message.head}${id}${message.body}}`);
    return { id, ts: message.ts, repeat: false };
  }

  /** Stores a change of a message as an entry and publishes it, as append does a message (for MemoryMessageChanges). */
  storeChange(request: { room: string; ts: number; head: string; lastDelivered?: string }, body: string, change: StoredChange, counted?: CountedMessage): string {
    return this.#store(request, body, change, () => counted);
  }

  /** Records a cluster event of this node (for MemoryMessageChanges). */
  recordEvent(type: ClusterEventType, data: string): void {
    this.#events.record(type, data);
  }

  /** Throws BrokerUnavailableError while unavailable, as every call does. */
  checkAvailable(): void {
    this.#check();
  }

  /** Assigns the next id, stores the entry, trims, and publishes `head + id + body` with the id before it. */
  #store(
    request: { room: string; ts: number; head: string; lastDelivered?: string },
    body: string,
    change: StoredChange | undefined,
    count: (id: string) => CountedMessage | undefined,
  ): string {
    const room = this.#hub.room(request.room);
    const id = room.ids.next();
    const prev = room.messages.at(-1)?.id ?? room.trimmed;
    if (request.lastDelivered !== undefined && compareStreamIds(request.lastDelivered, prev) > 0) this.#raiseLost(request.room, request.lastDelivered);
    room.messages.push(change === undefined ? { id, body } : { id, body, change });
    if (change !== undefined) room.changeEntries++;
    const counted = count(id);
    this.#trim(room);
    const frame = encoder.encode(request.head + id + body);
    this.#toRoom(request.room, (b) => {
      if (b.#dropping > 0) b.#dropping--;
      else b.#listener?.onRoomMessage(request.room, id, request.ts, frame, prev, counted);
    });
    return id;
  }

  /** Keeps the newest `historySize` messages, with the changes stored since the oldest of them (as the Redis scripts' TRIM). */
  #trim(room: MemoryRoom): void {
    const excess = room.messages.length - room.changeEntries - this.#historySize;
    if (excess < this.#trimBatch) return;
    let end = 0;
    for (let messages = 0; messages < excess || room.messages[end]!.change !== undefined; end++) {
      if (room.messages[end]!.change === undefined) messages++;
    }
    const cut = room.messages.splice(0, end);
    room.trimmed = cut.at(-1)!.id;
    room.changeEntries -= cut.filter((m) => m.change !== undefined).length;
    for (const m of cut) room.conversation?.numbers.delete(m.id);
    room.changes.forget(cut);
  }

  async history(room: string, before: string | undefined, limit: number, reader = ''): Promise<StoredMessage[]> {
    this.#check();
    const state = this.#hub.room(room);
    const page: StoredMessage[] = [];
    for (let i = state.messages.length - 1; i >= 0 && page.length < limit; i--) {
      const entry = state.messages[i]!;
      if (entry.change !== undefined || (before !== undefined && compareStreamIds(entry.id, before) >= 0)) continue;
      const shown = state.changes.current(entry, reader);
      if (shown !== undefined) page.push(shown);
    }
    return page.reverse();
  }

  async after(room: string, after: string, limit: number): Promise<RangeResult> {
    this.#check();
    const state = this.#hub.room(room);
    const start = state.firstAfter(after);
    const afterStored = start > 0 && state.messages[start - 1]!.id === after;
    const shown: StoredMessage[] = [];
    for (let i = start; i < state.messages.length; i++) {
      const entry = state.changes.current(state.messages[i]!, '');
      if (entry !== undefined) shown.push(entry);
    }
    const gap = rangeGap(after, { trimmed: state.trimmed, lost: state.lost, afterStored }, shown.length, limit);
    const messages = shown.slice(Math.max(0, shown.length - limit));
    const { newest, lost } = await this.streamHead(room);
    return gap === undefined ? { messages, newest, lost } : { messages, gap, newest, lost };
  }

  async streamHead(room: string): Promise<StreamHead> {
    this.#check();
    const state = this.#hub.room(room);
    return { newest: state.messages.at(-1)?.id ?? MIN_STREAM_ID, lost: state.lost };
  }

  async markLost(room: string, upTo: string): Promise<void> {
    this.#check();
    this.#raiseLost(room, upTo);
  }

  #raiseLost(room: string, upTo: string): void {
    const state = this.#hub.room(room);
    if (compareStreamIds(upTo, state.lost) <= 0) return;
    state.lost = upTo;
    this.#toRoom(room, (b) => b.#listener?.onRoomLoss(room, upTo));
  }

  async #presenceJoin(room: string, user: string, connections: number, list: number): Promise<RoomHeadcount> {
    this.#check();
    const state = this.#hub.room(room);
    if (connections > (state.presence.get(user)?.get(this) ?? 0)) {
      if (!state.admits(user)) throw new NotAMemberError(room, user);
      const restriction = state.changes.restrictions.get(user);
      if (restriction?.kind === 'ban') throw new RestrictedError('ban', restriction.reason);
    }
    let held = this.#presence.get(room);
    if (held === undefined) this.#presence.set(room, (held = new Set()));
    held.add(user);
    let nodes = state.presence.get(user);
    if (nodes === undefined) {
      state.presence.set(user, (nodes = new Map()));
      state.present.add(user);
      const count = state.present.size;
      if (count === 1) this.#events.record('room.occupied', { room });
      this.#events.record('member.joined', { room, user });
      const change = { user, online: true, count, seq: ++state.presenceSeq };
      this.#toRoom(room, (b) => b.#listener?.onPresence(room, change));
    }
    nodes.set(this, connections);
    return { count: state.present.size, first: state.present.page(undefined, list), seq: state.presenceSeq };
  }

  async #members(room: string, after: string | undefined, limit: number): Promise<MemberPage> {
    this.#check();
    const present = this.#hub.room(room).present;
    const users = present.page(after, limit + 1);
    return users.length > limit ? { users: users.slice(0, limit), count: present.size, next: users[limit - 1]! } : { users, count: present.size };
  }

  async #setUserConnections(user: string, connections: number): Promise<void> {
    this.#check();
    this.#setConnections(user, connections);
  }

  async sendUserCommand(user: string, command: string): Promise<number> {
    this.#check();
    const subscribers = [...this.#hub.user(user).subscribers].filter((b) => b.#available);
    for (const b of subscribers) {
      queueMicrotask(() => {
        if (b.#available && b.#users.has(user)) b.#listener?.onUserCommand(user, command);
      });
    }
    return subscribers.length;
  }

  async #presenceLeave(room: string, user: string): Promise<void> {
    this.#check();
    this.#withdraw(room, user);
  }

  async publishRoomEvent(room: string, user: string, frame: string): Promise<void> {
    this.#check();
    const bytes = encoder.encode(frame);
    this.#toRoom(room, (b) => b.#listener?.onRoomEvent(room, user, bytes));
  }

  async subscribeNode(node: string): Promise<void> {
    this.#nodes.add(node);
    this.#hub.nodes.set(node, this);
  }

  async sendToNode(node: string, payload: string): Promise<number> {
    this.#check();
    const target = this.#hub.nodes.get(node);
    if (target === undefined || !target.#available) return 0;
    const bytes = encoder.encode(payload);
    queueMicrotask(() => {
      if (target.#available && target.#nodes.has(node)) target.#listener?.onNodeMessage(bytes);
    });
    return 1;
  }

  async subscribeUser(user: string): Promise<void> {
    this.#users.add(user);
    this.#hub.user(user).subscribers.add(this);
  }

  async unsubscribeUser(user: string): Promise<void> {
    this.#users.delete(user);
    this.#hub.user(user).subscribers.delete(this);
  }

  async sendDirect({ to, head, body, ts, idempotencyKey }: DirectRequest): Promise<DirectResult> {
    this.#check();
    const once = idempotencyKey === undefined ? undefined : `user/${to}/${idempotencyKey}`;
    const first = once === undefined ? undefined : this.#hub.once.seen(once, this.#idempotencyTtlMs, Date.now());
    if (first !== undefined) return { id: first.id, ts: first.ts, receivers: 0, repeat: true };
    const id = this.#hub.user(to).directIds.next();
    const receivers = this.#toUser(to, head + id + body);
    if (once !== undefined && receivers > 0) this.#hub.once.record(once, id, ts, this.#idempotencyTtlMs, Date.now());
    return { id, ts, receivers, repeat: false };
  }

  async publishToUser(user: string, frame: string): Promise<void> {
    this.#check();
    this.#toUser(user, frame);
  }

  #withdraw(room: string, user: string): void {
    const held = this.#presence.get(room);
    held?.delete(user);
    if (held?.size === 0) this.#presence.delete(room);
    const state = this.#hub.room(room);
    const nodes = state.presence.get(user);
    if (nodes === undefined || !nodes.delete(this) || nodes.size > 0) return;
    state.presence.delete(user);
    state.present.delete(user);
    const count = state.present.size;
    this.#events.record('member.left', { room, user });
    if (count === 0) this.#events.record('room.vacated', { room });
    const change = { user, online: false, count, seq: ++state.presenceSeq };
    this.#toRoom(room, (b) => b.#listener?.onPresence(room, change));
  }

  #setConnections(user: string, connections: number): void {
    const nodes = this.#hub.user(user).connections;
    if (connections > 0) {
      const fresh = !nodes.has(this);
      this.#connected.add(user);
      nodes.set(this, connections);
      if (fresh && nodes.size === 1) this.#events.record('user.online', { user });
      return;
    }
    this.#connected.delete(user);
    if (nodes.delete(this) && nodes.size === 0) this.#events.record('user.offline', { user });
  }

  #toUser(user: string, frame: string): number {
    const bytes = encoder.encode(frame);
    const subscribers = [...this.#hub.user(user).subscribers].filter((b) => b.#available);
    for (const b of subscribers) {
      queueMicrotask(() => {
        if (b.#available && b.#users.has(user)) b.#listener?.onUserFrame(user, bytes);
      });
    }
    return subscribers.length;
  }

  /** Runs `deliver` on every broker subscribed to `room`, asynchronously like a real broker (never inside the caller's call). */
  #toRoom(room: string, deliver: (broker: MemoryBroker) => void): void {
    for (const b of this.#hub.room(room).subscribers) {
      b.#later(() => {
        if (b.#available && b.#rooms.has(room)) deliver(b);
      });
    }
  }

  /** In order, after the current call: at once, or after the configured delay. */
  #later(task: () => void): void {
    if (this.#deliveryDelayMs === 0) queueMicrotask(task);
    else setTimeout(task, this.#deliveryDelayMs);
  }


  #check(): void {
    if (!this.up) throw new BrokerUnavailableError('memory broker is unavailable');
  }
}
