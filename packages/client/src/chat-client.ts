import {
  CloseCode,
  compareIds,
  encodeClientFrame,
  parseServerFrame,
  type AckFrame,
  type ClientFrame,
  type DirectMessageFrame,
  type ErrorFrame,
  type HistoryFrame,
  type JoinedFrame,
  type LeftFrame,
  type MembersFrame,
  type MessageFrame,
  type OccupancyFrame,
  type PresenceFrame,
  type ServerFrame,
  type TypingEventFrame,
  type WelcomeFrame,
} from '@chat/protocol';
import { Emitter } from './emitter.js';
import { ChatRequestError, failDisconnected } from './errors.js';
import { Outbox, newKey, type Outgoing } from './outbox.js';
import { RoomRoster, type MemberList, type RosterEffect } from './roster.js';

/** The WebSocket API subset the client needs: the browser's, or `ws` in Node. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}
export type WebSocketFactory = (url: string) => WebSocketLike;

export type ConnectionState = 'connecting' | 'connected' | 'reconnecting' | 'offline' | 'closed';

export interface ChatClientOptions {
  /**
   * The gateway's WebSocket URL, e.g. wss://chat.example.com/ws. With several, the
   * first connection goes to the first (shuffle the list to spread them), and each
   * reconnect to a random other one, so a dead gateway's clients spread over all
   * the others.
   */
  url: string | string[];
  /** Development identity (`?user=`) ... */
  user?: string;
  /** ... or a JWT (`?token=`). */
  token?: string;
  /** Defaults to the global WebSocket (browsers, Node 22+); pass `(url) => new WebSocket(url)` from `ws` otherwise. */
  webSocket?: WebSocketFactory;
  /** Sends made while disconnected wait, up to this many; more are refused at once. Default 100. */
  queueLimit?: number;
  /** A request without an answer in this time fails. Default 10 s. */
  requestTimeoutMs?: number;
  /** A send refused as `unavailable` or `rate_limited` is retried (with backoff) until this long after its first attempt. Default 30 s. */
  retryForMs?: number;
  /**
   * Reconnect backoff: the first reconnect waits a random time up to `backoffMinMs`,
   * each further failure up to twice as long, capped at `backoffMaxMs` (full jitter,
   * so the clients of a gateway that went away do not all come back at once).
   * Defaults 1 s and 10 s.
   */
  backoffMinMs?: number;
  backoffMaxMs?: number;
}

export interface ChatClientEvents extends Record<string, (...args: never[]) => void> {
  /** Every room message once, in order, across reconnects: history from `joined` first, then live. */
  message(message: MessageFrame): void;
  /** A user arrived or left (rooms within the list limit); `count()` and `memberList()` already include it. */
  presence(event: PresenceFrame): void;
  /** The room's count changed while it is above the list limit, or crossed it; `count()` already says it. */
  occupancy(event: OccupancyFrame): void;
  /**
   * A room's member list was replaced as a whole: after every (re)join, when the
   * room crossed above the list limit (`complete` turns false: show the count,
   * page with `members()`), and when, back within it, the list was read again
   * (`complete` true: every user, kept current by `presence` from now on).
   */
  members(list: MemberList): void;
  typing(event: TypingEventFrame): void;
  dm(message: DirectMessageFrame): void;
  state(state: ConnectionState, detail: { code?: number; reason?: string; node?: string }): void;
  /**
   * A (re)join completed, its history already delivered as `message` events;
   * `gap` is true when the service cannot show that every message after the
   * last one seen is there (trimmed, or lost by Redis). `byServer`: the
   * application's backend joined this user (server API); the room is rejoined
   * after reconnects like one joined here.
   */
  joined(frame: JoinedFrame, info: { resumed: boolean; gap: boolean; byServer?: boolean }): void;
  /** The application's backend took this user out of a room (server API). */
  left(frame: LeftFrame): void;
  /** An `error` frame that answered no pending request. */
  error(error: ErrorFrame): void;
}

export { ChatRequestError, type MemberList };

/** Options of one `send` or `dm`. */
export interface SendOptions {
  /** Idempotency key (`[A-Za-z0-9_.:-]{1,64}`); a fresh one by default. Reuse one to make an application-level retry safe. */
  key?: string;
}

interface Pending {
  resolve(frame: ServerFrame): void;
  reject(error: Error): void;
  timer: ReturnType<typeof setTimeout>;
  /** Runs on the answer before anything read after it (a `joined` frame's history must come before the live messages that follow it). */
  onAnswer?: (frame: ServerFrame) => void;
}

const OPEN = 1;

/**
 * A chat client that reconnects by itself: after a reconnect it rejoins its rooms
 * with `since` = the last id it saw, so the application sees every message once,
 * in order, with no gap. Close codes are honoured: 1008 (policy: flooding,
 * expired token) and 4000 (the application disconnected the user) do not retry
 * and go `offline`; anything else (1001 from a draining node, a crash) retries
 * with jittered exponential backoff, on another URL when there are several.
 * Every send carries an idempotency key, so it is resent rather than failed:
 * one made while disconnected is queued (up to `queueLimit`), one whose
 * connection dropped before its `ack` goes out again after the rejoin, and one
 * refused as `unavailable` is retried; the service stores it once, and the
 * promise resolves once, with its one id.
 */
export class ChatClient extends Emitter<ChatClientEvents> {
  readonly #options: Required<Omit<ChatClientOptions, 'user' | 'token' | 'webSocket' | 'url'>> & Pick<ChatClientOptions, 'user' | 'token'>;
  readonly #urls: string[];
  #urlIndex = 0;
  readonly #factory: WebSocketFactory;
  /** room -> newest id seen (undefined: joined, nothing seen yet) */
  readonly #rooms = new Map<string, string | undefined>();
  /** room -> its count and member list, from its latest `joined` */
  readonly #rosters = new Map<string, RoomRoster>();
  readonly #pending = new Map<string, Pending>();
  readonly #outbox: Outbox;
  #ws: WebSocketLike | null = null;
  #state: ConnectionState = 'closed';
  #welcome: WelcomeFrame | undefined;
  #refs = 0;
  #attempt = 0;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #ready = false;

  constructor(options: ChatClientOptions) {
    super();
    const { url, ...rest } = options;
    this.#urls = Array.isArray(url) ? url : [url];
    if (this.#urls.length === 0) throw new Error('ChatClient needs at least one url');
    this.#options = { queueLimit: 100, requestTimeoutMs: 10_000, retryForMs: 30_000, backoffMinMs: 1000, backoffMaxMs: 10_000, ...rest };
    const factory = options.webSocket ?? ((url: string) => new (globalThis as unknown as { WebSocket: new (u: string) => WebSocketLike }).WebSocket(url));
    this.#factory = factory;
    const { queueLimit, requestTimeoutMs, retryForMs } = this.#options;
    this.#outbox = new Outbox({ queueLimit, requestTimeoutMs, retryForMs, retryMinMs: 250, retryMaxMs: 4000 });
  }

  get state(): ConnectionState {
    return this.#state;
  }

  /** The `welcome` of the current connection. */
  get welcome(): WelcomeFrame | undefined {
    return this.#welcome;
  }

  get rooms(): string[] {
    return [...this.#rooms.keys()];
  }

  /** Opens the connection; resolves on `welcome`. Also restarts a client that went `offline`. */
  connect(): Promise<WelcomeFrame> {
    clearTimeout(this.#retryTimer);
    this.#open(this.#state === 'closed' || this.#state === 'offline' ? 'connecting' : 'reconnecting');
    return new Promise((resolve, reject) => {
      const offWelcome = this.on('state', (state, detail) => {
        if (state === 'connected') { offWelcome(); resolve(this.#welcome!); }
        if (state === 'offline' || state === 'closed') { offWelcome(); reject(new ChatRequestError('disconnected', detail.reason ?? state)); }
      });
    });
  }

  /** Closes for good: no reconnect; queued and pending requests fail. */
  close(): void {
    clearTimeout(this.#retryTimer);
    this.#setState('closed', { code: CloseCode.NORMAL });
    const ws = this.#ws;
    this.#ws = null;
    ws?.close(CloseCode.NORMAL, 'bye');
    this.#failAll('client closed');
  }

  /**
   * Joins a room (and rejoins it after every reconnect); history arrives as
   * `message` events. `since`: the newest id the application already has (kept
   * across a page reload, say): the join then brings exactly what came after it.
   */
  async join(room: string, options: { since?: string } = {}): Promise<JoinedFrame> {
    if (!this.#rooms.has(room)) this.#rooms.set(room, options.since);
    return this.#joinFrame(room, this.#rooms.get(room));
  }

  async leave(room: string): Promise<void> {
    this.#rooms.delete(room);
    this.#rosters.delete(room);
    await this.#request({ type: 'leave', room });
  }

  /** Resolves with the `ack`, once, however often it had to be sent; queued while disconnected. */
  send(room: string, text: string, options: SendOptions = {}): Promise<AckFrame> {
    return this.#deliver({ type: 'send', room, text, key: options.key ?? newKey(), ref: this.#nextRef() });
  }

  dm(to: string, text: string, options: SendOptions = {}): Promise<AckFrame> {
    return this.#deliver({ type: 'dm', to, text, key: options.key ?? newKey(), ref: this.#nextRef() });
  }

  /** Best effort: dropped while disconnected. */
  typing(room: string): void {
    if (this.#ready) this.#ws?.send(encodeClientFrame({ type: 'typing', room }));
  }

  async history(room: string, options: { before?: string; limit?: number } = {}): Promise<MessageFrame[]> {
    const frame = (await this.#request({ type: 'history', room, ...options })) as HistoryFrame;
    return frame.messages;
  }

  /** Users in a joined room (a user with several connections counts once); undefined before its `joined`. */
  count(room: string): number | undefined {
    return this.#rosters.get(room)?.count;
  }

  /**
   * The room's member list as the client keeps it: every user while the room is
   * within the gateway's list limit (`complete`), else a sample; see `MemberList`.
   * The `members` event says when it was replaced as a whole.
   */
  memberList(room: string): MemberList | undefined {
    return this.#rosters.get(room)?.snapshot();
  }

  /**
   * One page of a joined room's users, ascending by id: pass the answer's `next`
   * as `after` for the following page (absent on the last). `limit`: 100 by
   * default, at most 1000. Changes nothing the client keeps.
   */
  async members(room: string, options: { after?: string; limit?: number } = {}): Promise<MembersFrame> {
    return (await this.#request({ type: 'members', room, ...options })) as MembersFrame;
  }

  // ---- connection ----------------------------------------------------------------

  #open(state: ConnectionState): void {
    this.#setState(state, {});
    const { user, token } = this.#options;
    const url = this.#urls[this.#urlIndex]!;
    const query = token !== undefined ? `token=${encodeURIComponent(token)}` : `user=${encodeURIComponent(user ?? '')}`;
    const ws = this.#factory(`${url}${url.includes('?') ? '&' : '?'}${query}`);
    this.#ws = ws;
    ws.onmessage = (event) => this.#onFrame(String(event.data));
    ws.onclose = (event) => this.#onClose(ws, event.code, event.reason);
    ws.onerror = () => {}; // a close follows
  }

  #onClose(ws: WebSocketLike, code: number, reason: string): void {
    if (ws !== this.#ws) return;
    this.#ws = null;
    this.#ready = false;
    this.#outbox.close(); // sends in flight go out again after the next rejoin
    this.#failPending('connection lost before the answer; the request may or may not have taken effect');
    if (this.#state === 'closed') return;
    if (code === CloseCode.POLICY_VIOLATION || code === CloseCode.DISCONNECTED) {
      this.#setState('offline', { code, reason });
      this.#outbox.failAll(code === CloseCode.DISCONNECTED ? 'disconnected by the application; not retrying' : 'the server refused this connection (policy); not retrying');
      return;
    }
    const delay = this.#backoff();
    this.#urlIndex = otherIndex(this.#urlIndex, this.#urls.length);
    this.#setState('reconnecting', { code, reason });
    this.#retryTimer = setTimeout(() => this.#open('reconnecting'), delay);
  }

  #backoff(): number {
    const { backoffMinMs, backoffMaxMs } = this.#options;
    const ceiling = Math.min(backoffMaxMs, backoffMinMs * 2 ** this.#attempt++);
    return Math.random() * ceiling;
  }

  /** After `welcome`: rejoin every room with since, then send what waits (resends first). */
  async #resume(): Promise<void> {
    const ws = this.#ws;
    const rejoins = [...this.#rooms].map(([room, since]) => this.#joinFrame(room, since).catch(() => undefined));
    await Promise.all(rejoins);
    if (ws === null || ws !== this.#ws) return; // dropped again meanwhile: the next welcome resumes
    this.#attempt = 0;
    this.#ready = true;
    this.#setState('connected', { node: this.#welcome?.node });
    this.#outbox.open((frame) => ws.send(encodeClientFrame(frame)));
  }

  /**
   * The history goes to the application as the `joined` frame is read, before
   * any frame read after it: a runtime may hand several frames over in one go
   * (Node's `ws` does, without running promise continuations between them).
   */
  async #joinFrame(room: string, since: string | undefined): Promise<JoinedFrame> {
    const frame = since === undefined ? { type: 'join' as const, room } : { type: 'join' as const, room, since };
    return (await this.#request(frame, (answer) => {
      if (answer.type !== 'joined') return;
      this.#takeRoster(answer);
      this.#takeHistory(answer);
      this.emit('joined', answer, { resumed: since !== undefined, gap: answer.recovered === false });
      this.#emitMembers(answer.room);
    })) as JoinedFrame;
  }

  #onFrame(raw: string): void {
    const frame = parseServerFrame(raw);
    if (frame === null) return;
    switch (frame.type) {
      case 'welcome':
        this.#welcome = frame;
        void this.#resume();
        return;
      case 'message':
        return this.#onMessage(frame);
      case 'presence':
        this.#onRosterEffect(frame.room, (r) => r.presence(frame));
        return this.emit('presence', frame);
      case 'occupancy':
        this.#onRosterEffect(frame.room, (r) => r.occupancy(frame));
        return this.emit('occupancy', frame);
      case 'typing':
        return this.emit('typing', frame);
      case 'dm':
        return this.emit('dm', frame);
      default:
        break;
    }
    const ref = 'ref' in frame ? frame.ref : undefined;
    if (ref === undefined && frame.type === 'joined') return this.#joinedByServer(frame);
    if (ref === undefined && frame.type === 'left') {
      this.#rooms.delete(frame.room);
      this.#rosters.delete(frame.room);
      return this.emit('left', frame);
    }
    if (ref !== undefined && (frame.type === 'ack' || frame.type === 'error') && this.#outbox.answer(ref, frame)) return;
    const pending = ref === undefined ? undefined : this.#pending.get(ref);
    if (pending === undefined) {
      if (frame.type === 'error') this.emit('error', frame);
      return;
    }
    this.#pending.delete(ref!);
    clearTimeout(pending.timer);
    if (frame.type === 'error') return pending.reject(new ChatRequestError(frame.code, frame.message));
    pending.onAnswer?.(frame);
    pending.resolve(frame);
  }

  /** A join the backend made: the room becomes one of ours, its history goes out first. */
  #joinedByServer(frame: JoinedFrame): void {
    if (!this.#rooms.has(frame.room)) this.#rooms.set(frame.room, undefined);
    this.#takeRoster(frame);
    this.#takeHistory(frame);
    this.emit('joined', frame, { resumed: false, gap: false, byServer: true });
    this.#emitMembers(frame.room);
  }

  // ---- member lists ----------------------------------------------------------------

  /** Every `joined` starts the room's count and list afresh (a rejoin's too): what came before it is stale. */
  #takeRoster(frame: JoinedFrame): void {
    if (this.#rooms.has(frame.room)) this.#rosters.set(frame.room, new RoomRoster(frame));
  }

  #emitMembers(room: string): void {
    const roster = this.#rosters.get(room);
    if (roster !== undefined) this.emit('members', roster.snapshot());
  }

  #onRosterEffect(room: string, event: (roster: RoomRoster) => RosterEffect): void {
    const roster = this.#rosters.get(room);
    if (roster === undefined) return;
    const effect = event(roster);
    if (effect.kind === 'replaced') this.#emitMembers(room);
    else if (effect.kind === 'repage') this.#repage(roster, effect.token);
  }

  /**
   * Reads the room's list from the start after a crossing down. Each page is
   * taken as it is read (`onAnswer`), so a `presence` read after it is applied
   * after it, and one read before it waits in the roster for the last page.
   * A rejoin meanwhile makes a new roster: this one's answers then change nothing.
   */
  #repage(roster: RoomRoster, token: number, after?: string): void {
    const frame = { type: 'members' as const, room: roster.room, limit: roster.pageLimit, ...(after !== undefined && { after }) };
    this.#request(frame, (answer) => {
      if (answer.type !== 'members' || this.#rosters.get(roster.room) !== roster) return;
      const step = roster.repaged(token, answer);
      if (step.kind === 'more') this.#repage(roster, token, step.after);
      else if (step.kind === 'done') this.#emitMembers(roster.room);
    }).catch(() => {
      // Disconnected: the rejoin starts afresh. Refused or timed out: the list stays a sample until the next presence.
      roster.repageFailed(token);
    });
  }

  /**
   * A joined frame's history, then its position: a member that gets no message
   * before its next reconnect still rejoins with `since`, so it is given what
   * it missed (or told it cannot be) rather than only the latest few.
   */
  #takeHistory(frame: JoinedFrame): void {
    for (const m of frame.history) this.#onMessage(m);
    if (frame.newest === undefined || !this.#rooms.has(frame.room)) return;
    const at = this.#rooms.get(frame.room);
    if (at === undefined || compareIds(frame.newest, at) > 0) this.#rooms.set(frame.room, frame.newest);
  }

  /** Each message once, in order: anything at or below the newest id seen in its room is a repeat. */
  #onMessage(message: MessageFrame): void {
    if (!this.#rooms.has(message.room)) return;
    const newest = this.#rooms.get(message.room);
    if (newest !== undefined && compareIds(message.id, newest) <= 0) return;
    this.#rooms.set(message.room, message.id);
    this.emit('message', message);
  }

  // ---- requests ------------------------------------------------------------------

  #nextRef(): string {
    return `r${++this.#refs}`;
  }

  #request(frame: ClientFrame, onAnswer?: Pending['onAnswer']): Promise<ServerFrame> {
    return new Promise((resolve, reject) => {
      const ws = this.#ws;
      if (ws === null || ws.readyState !== OPEN || this.#welcome === undefined) {
        reject(new ChatRequestError('disconnected', 'not connected'));
        return;
      }
      const ref = this.#nextRef();
      const timer = setTimeout(() => {
        this.#pending.delete(ref);
        reject(new ChatRequestError('timeout', `no answer within ${this.#options.requestTimeoutMs} ms`));
      }, this.#options.requestTimeoutMs);
      this.#pending.set(ref, { resolve, reject, timer, onAnswer });
      ws.send(encodeClientFrame({ ...frame, ref }));
    });
  }

  #deliver(frame: Outgoing): Promise<AckFrame> {
    if (this.#state === 'closed' || this.#state === 'offline') {
      return Promise.reject(new ChatRequestError('disconnected', `client is ${this.#state}`));
    }
    return this.#outbox.add(frame);
  }

  #failPending(reason: string): void {
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    failDisconnected(pending, reason);
  }

  #failAll(reason: string): void {
    this.#outbox.failAll(reason);
    this.#failPending(reason);
  }

  #setState(state: ConnectionState, detail: { code?: number; reason?: string; node?: string }): void {
    if (state === this.#state && state !== 'reconnecting') return;
    this.#state = state;
    this.emit('state', state, detail);
  }
}

/** A random index of `count` other than `current` (itself when it is the only one). */
function otherIndex(current: number, count: number): number {
  if (count < 2) return current;
  const pick = Math.floor(Math.random() * (count - 1));
  return pick >= current ? pick + 1 : pick;
}
