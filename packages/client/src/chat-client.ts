import { Emitter } from './emitter.js';
import { ChatRequestError, failDisconnected } from './errors.js';
import { applyChange } from './message-changes.js';
import { Outbox, newKey, type Outgoing } from './outbox.js';
import {
  CloseCode,
  compareIds,
  type AckFrame,
  type ChangeEventFrame,
  type ClientFrame,
  type DirectMessageFrame,
  type ErrorFrame,
  type HistoryFrame,
  type JoinedFrame,
  type LeftFrame,
  type MembersFrame,
  type MessageFrame,
  type OccupancyFrame,
  type OpenedFrame,
  type PresenceFrame,
  type RoomsFrame,
  type ServerFrame,
  type TypingEventFrame,
  type UnreadFrame,
  type WelcomeFrame,
  ROOMS_MAX_LIMIT,
} from './protocol.js';
import { RoomRoster, type MemberList, type RosterEffect } from './roster.js';
import { EventStreamConnection, type FetchLike } from './sse-transport.js';
import { ABNORMAL_CLOSURE, type Connection, type ConnectionHandlers, type TransportName } from './transport.js';
import { TransportChoice, defaultStorage, type StorageLike } from './transport-choice.js';
import { UnreadBook, type RoomUnread } from './unread-book.js';
import { WebSocketConnection, globalWebSocket, type WebSocketFactory } from './websocket-transport.js';

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
  /** ... or a JWT (`?token=` on a WebSocket, `Authorization: Bearer` on the fallback transport). */
  token?: string;
  /**
   * The transports to try, in order of preference; default `['websocket', 'sse']`:
   * a WebSocket, and the fallback (an event stream on `GET /sse`, frames sent
   * with `POST /sse/send`) when a WebSocket does not reach `welcome` within
   * `welcomeTimeoutMs`. `['sse']` or `['websocket']` forces one. A transport
   * this runtime lacks (no WebSocket, no fetch, and none given) is left out.
   */
  transports?: TransportName[];
  /** A connection that has not delivered `welcome` in this time is given up (a stalled WebSocket: the next transport). Default 5 s. */
  welcomeTimeoutMs?: number;
  /**
   * After a WebSocket failed where the fallback then worked, connections start
   * with the fallback for this long (kept in `localStorage` too, where there is
   * one); when it is over, a connected client tries a WebSocket beside its
   * stream and moves over if it reaches `welcome`. Default 5 minutes.
   */
  fallbackMemoryMs?: number;
  /** Where `localStorage` is not wanted or not there; `null`: remember in memory only. Default `localStorage` if any. */
  storage?: StorageLike | null;
  /**
   * The fallback's stream URL(s), e.g. https://chat.example.com/sse (POSTs go to
   * its `/send`). Default: each `url` with ws(s) -> http(s) and a final `/ws` -> `/sse`.
   */
  sseUrl?: string | string[];
  /** Defaults to the global WebSocket (browsers, Node 22+); pass `(url) => new WebSocket(url)` from `ws` otherwise. */
  webSocket?: WebSocketFactory;
  /** The fallback's HTTP client; defaults to the global `fetch` (browsers, Node 18+). */
  fetch?: FetchLike;
  /** A fallback stream that says nothing (not even a heartbeat) for this long is dead: reconnect. Default 45 s (the contract's). */
  streamSilenceMs?: number;
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

/** What a `state` event says besides the state. */
export interface StateDetail {
  code?: number;
  reason?: string;
  node?: string;
  /** With `connected`: the transport in use. */
  transport?: TransportName;
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
  /** The connection's state; `connected` says on which node and over which transport (also again when it moves to a WebSocket). */
  state(state: ConnectionState, detail: StateDetail): void;
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
  /**
   * A members-only room's unread count or read position changed: a message by
   * someone else (`last` is it), a read on another device or connection, or the
   * answer to this client's own `read()`. `unreadOf()` and `unreadTotal`
   * already include it. The frame says the state the client now holds: a part
   * of it older than what the client knew (see `unreadOf`) is replaced by what
   * the client knew, and a frame older in every part is not emitted at all.
   */
  unread(frame: UnreadFrame): void;
  /**
   * A page of the user's members-only rooms was read: one the application asked
   * for with `listRooms()`, or one the client read by itself after a reconnect
   * (`refresh` true; see `listRooms`). Its entries are in `unreadOf()` already.
   */
  rooms(page: RoomsFrame, info: { refresh: boolean }): void;
  /** The sum of the known rooms' unread counts changed. */
  unreadTotal(total: number): void;
  /**
   * A message of a joined room was edited, deleted or reacted to: apply it to
   * the messages the application shows with `applyChange` (which leaves any
   * other message as it is, and a change already applied too). After a rejoin
   * with `since`, the changes made meanwhile come right after `joined`, also of
   * messages older than its history; a room list's `last` is already changed.
   */
  change(frame: ChangeEventFrame): void;
}

export { ChatRequestError, type MemberList, type RoomUnread };

/** What `read()` resolves with: the user's count and read position in the room after it. */
export interface ReadResult {
  count: number;
  read: string;
}

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

/** A connection that has not reached `welcome` yet, and its deadline. */
interface Attempt {
  conn: Connection;
  timer: ReturnType<typeof setTimeout> | undefined;
}

const WEBSOCKET_PROBE_JITTER = 0.1;

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
 *
 * Transports: a WebSocket first, and the fallback transport (an event stream
 * down, POSTs up) when a WebSocket cannot reach `welcome` (refused, or a proxy
 * that takes the upgrade and then stalls): see `transports`,
 * `welcomeTimeoutMs` and `fallbackMemoryMs`. Everything above holds on both.
 */
export class ChatClient extends Emitter<ChatClientEvents> {
  readonly #options: Required<Omit<ChatClientOptions, 'user' | 'token' | 'webSocket' | 'url' | 'sseUrl' | 'fetch' | 'storage' | 'transports'>> & Pick<ChatClientOptions, 'user' | 'token'>;
  readonly #urls: string[];
  readonly #sseUrls: string[];
  #urlIndex = 0;
  readonly #webSocket: WebSocketFactory | undefined;
  readonly #fetch: FetchLike | undefined;
  readonly #choice: TransportChoice;
  /** room -> newest id seen (undefined: joined, nothing seen yet) */
  readonly #rooms = new Map<string, string | undefined>();
  /** room -> its count and member list, from its latest `joined` */
  readonly #rosters = new Map<string, RoomRoster>();
  readonly #pending = new Map<string, Pending>();
  readonly #outbox: Outbox;
  /** The connection being opened, and the transports still to try after it if it fails. */
  #dialing: Attempt | null = null;
  #round: TransportName[] = [];
  /** A WebSocket failed to reach `welcome` in this round: if another transport does, remember. */
  #webSocketFailed = false;
  /** The connection that said `welcome`: frames go here. */
  #conn: Connection | null = null;
  /** A WebSocket tried beside a fallback connection, to move to once it says `welcome`. */
  #probe: Attempt | null = null;
  #probeTimer: ReturnType<typeof setTimeout> | undefined;
  #state: ConnectionState = 'closed';
  #stateTransport: TransportName | undefined;
  #welcome: WelcomeFrame | undefined;
  #refs = 0;
  #attempt = 0;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #ready = false;
  /** The unread counts of the user's members-only rooms, as last told. */
  readonly #unread = new UnreadBook();
  /** Bumped by every connection's refresh of the room list: an older refresh stops. */
  #refreshes = 0;

  constructor(options: ChatClientOptions) {
    super();
    const { url, sseUrl, webSocket, fetch, storage, transports, ...rest } = options;
    this.#urls = Array.isArray(url) ? url : [url];
    if (this.#urls.length === 0) throw new Error('ChatClient needs at least one url');
    this.#sseUrls = sseUrl === undefined ? this.#urls.map(streamUrlOf) : Array.isArray(sseUrl) ? sseUrl : [sseUrl];
    if (this.#sseUrls.length === 0) throw new Error('ChatClient: sseUrl is an empty list');
    this.#options = {
      queueLimit: 100, requestTimeoutMs: 10_000, retryForMs: 30_000, backoffMinMs: 1000, backoffMaxMs: 10_000,
      welcomeTimeoutMs: 5000, fallbackMemoryMs: 5 * 60_000, streamSilenceMs: 45_000, ...rest,
    };
    this.#webSocket = webSocket ?? globalWebSocket();
    const globalFetch = (globalThis as { fetch?: FetchLike }).fetch;
    this.#fetch = fetch ?? (typeof globalFetch === 'function' ? globalFetch.bind(globalThis) : undefined);
    const usable = (transports ?? ['websocket', 'sse']).filter((t, i, all) => all.indexOf(t) === i
      && (t === 'websocket' ? this.#webSocket !== undefined : this.#fetch !== undefined));
    if (usable.length === 0) {
      throw new Error(`ChatClient: none of the transports ${JSON.stringify(transports ?? ['websocket', 'sse'])} can run here: pass webSocket (e.g. from 'ws') or fetch`);
    }
    this.#choice = new TransportChoice(usable, this.#options.fallbackMemoryMs, storage === undefined ? defaultStorage() : storage,
      `@chat/client:websocket-fallback:${hostOf(this.#urls[0]!)}`);
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

  /** The transport of the current connection (from its `welcome` on); undefined while there is none. */
  get transport(): TransportName | undefined {
    return this.#conn?.transport;
  }

  /** The transports this client tries, in its order of preference. */
  get transports(): readonly TransportName[] {
    return this.#choice.transports;
  }

  get rooms(): string[] {
    return [...this.#rooms.keys()];
  }

  /** Opens the connection; resolves on `welcome`. Also restarts a client that went `offline`. */
  connect(): Promise<WelcomeFrame> {
    if (this.#ready) return Promise.resolve(this.#welcome!);
    if (this.#dialing === null && this.#conn === null) {
      clearTimeout(this.#retryTimer);
      this.#open(this.#state === 'closed' || this.#state === 'offline' ? 'connecting' : 'reconnecting');
    }
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
    this.#ready = false;
    this.#abandon(this.#dialing);
    this.#dialing = null;
    this.#cancelProbe();
    const conn = this.#conn;
    this.#conn = null;
    conn?.close(CloseCode.NORMAL, 'bye');
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
  async send(room: string, text: string, options: SendOptions = {}): Promise<AckFrame> {
    return (await this.#deliver({ type: 'send', room, text, key: options.key ?? newKey(), ref: this.#nextRef() })) as AckFrame;
  }

  /** An ephemeral direct message (not stored for an offline user); `open()` makes a stored conversation. */
  async dm(to: string, text: string, options: SendOptions = {}): Promise<AckFrame> {
    return (await this.#deliver({ type: 'dm', to, text, key: options.key ?? newKey(), ref: this.#nextRef() })) as AckFrame;
  }

  // ---- changes of messages ------------------------------------------------------------

  /**
   * Replaces the text of the user's own message `target`; resolves with the
   * `ack` (the change's own id). Changes are not queued: while disconnected,
   * or when the connection drops before the answer, they fail with
   * `disconnected`, and the application decides whether to try again.
   */
  async edit(room: string, target: string, text: string): Promise<AckFrame> {
    return (await this.#request({ type: 'edit', room, target, text })) as AckFrame;
  }

  /** Deletes message `target`: the user's own, or anyone's in a room the user moderates. */
  async delete(room: string, target: string): Promise<AckFrame> {
    return (await this.#request({ type: 'delete', room, target })) as AckFrame;
  }

  /** Adds the user's reaction (a key such as `thumbsup`); an `ack` with `unchanged` when it was there already. */
  async react(room: string, target: string, reaction: string): Promise<AckFrame> {
    return (await this.#request({ type: 'react', room, target, reaction })) as AckFrame;
  }

  /** Removes the user's reaction; an `ack` with `unchanged` when there was none. */
  async unreact(room: string, target: string, reaction: string): Promise<AckFrame> {
    return (await this.#request({ type: 'unreact', room, target, reaction })) as AckFrame;
  }

  // ---- conversations ---------------------------------------------------------------

  /**
   * Opens the direct conversation with `user` (who may never have connected):
   * resolves with its room, the same whoever of the two opens it. It is a
   * members-only room of the two: `join` it to read its history and messages,
   * `send` to it; messages are stored for a user who is offline. Queued while
   * disconnected, and sent again if the connection drops before the answer.
   */
  async open(user: string): Promise<string> {
    this.#unread.use();
    const opened = (await this.#deliver({ type: 'open', with: user, ref: this.#nextRef() })) as OpenedFrame;
    this.#unread.name(opened.room, opened.with);
    return opened.room;
  }

  /**
   * Moves the user's read position in members-only room `room` forward to
   * message `id` (an older id changes nothing); resolves with the count and
   * position after it. Every other connection of the user, on any gateway, is
   * told (`unread`), so their badges clear too. Queued while disconnected, and
   * sent again if the connection drops before the answer.
   */
  async read(room: string, id: string): Promise<ReadResult> {
    this.#unread.use();
    const answer = (await this.#deliver({ type: 'read', room, id, ref: this.#nextRef() })) as UnreadFrame;
    return { count: answer.count, read: answer.read };
  }

  /**
   * A page of the user's members-only rooms, most recent activity first, each
   * with its unread count, read position, newest message and (a direct
   * conversation) the other user: pass the answer's `next` as `before` for the
   * following page (absent on the last). `limit`: 50 by default, at most 100.
   *
   * The counts become the client's (`unreadOf`, `unreadTotal`), kept current
   * from then on by `unread` frames. After every reconnect the client reads
   * the list again by itself, from the start, until it has seen every room it
   * knew (or the list ended: a room not in it is no longer the user's): the
   * frames sent while it was away are lost, so the counts would be stale.
   */
  async listRooms(options: { limit?: number; before?: string } = {}): Promise<RoomsFrame> {
    this.#unread.use();
    return (await this.#request({ type: 'rooms', ...options }, (answer) => {
      if (answer.type === 'rooms') this.#takeRooms(answer, false);
    })) as RoomsFrame;
  }

  /** The sum of the unread counts of the rooms the client knows (from `listRooms` pages and `unread` frames). */
  get unreadTotal(): number {
    return this.#unread.total;
  }

  /**
   * What the client knows of a members-only room: its latest count, read
   * position and newest message. "Latest" by position, not arrival: a count
   * goes with its read position and is not taken from a state behind the one
   * kept (a page read before a message, arriving after that message's frame);
   * the newest message is taken whenever it is newer.
   */
  unreadOf(room: string): RoomUnread | undefined {
    return this.#unread.get(room);
  }

  /** Every members-only room the client knows, newest message first. */
  conversations(): RoomUnread[] {
    return this.#unread.all();
  }

  /** Best effort: dropped while disconnected. */
  typing(room: string): void {
    if (this.#ready) this.#conn?.send({ type: 'typing', room });
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

  /** Starts a round: each transport in turn until one says `welcome`, or all failed (then a backoff). */
  #open(state: ConnectionState): void {
    this.#setState(state, {});
    this.#round = this.#choice.order();
    this.#webSocketFailed = false;
    this.#dialNext();
  }

  #dialNext(): void {
    const transport = this.#round.shift()!;
    this.#dialing = this.#attemptOn(transport, () => this.#dialFailed(ABNORMAL_CLOSURE, `no welcome within ${this.#options.welcomeTimeoutMs} ms over ${transport}`));
  }

  /** A connection over `transport` to the current URL, given up (`onTimeout`) if it says no `welcome` in time. */
  #attemptOn(transport: TransportName, onTimeout: () => void): Attempt {
    const attempt: Attempt = { conn: this.#connection(transport), timer: undefined };
    attempt.timer = setTimeout(() => {
      attempt.conn.close(CloseCode.NORMAL, 'no welcome in time');
      onTimeout();
    }, this.#options.welcomeTimeoutMs);
    return attempt;
  }

  /** A new connection; what it reports goes where its role (dialing, current, probe) says at the time. */
  #connection(transport: TransportName): Connection {
    const handlers: ConnectionHandlers = {
      frame: (frame) => {
        if (conn === this.#conn) this.#onFrame(frame);
        else if (frame.type !== 'welcome') return;
        else if (conn === this.#dialing?.conn) this.#adopt(frame);
        else if (conn === this.#probe?.conn) this.#moveToProbe(frame);
      },
      closed: (code, reason) => {
        if (conn === this.#conn) this.#onClose(code, reason);
        else if (conn === this.#dialing?.conn) this.#dialFailed(code, reason);
        else if (conn === this.#probe?.conn) this.#probeFailed();
      },
    };
    const conn = this.#transportFor(transport, handlers);
    return conn;
  }

  /** The transport's connection to the current URL, the identity in it. */
  #transportFor(transport: TransportName, handlers: ConnectionHandlers): Connection {
    const { user, token, streamSilenceMs, requestTimeoutMs } = this.#options;
    if (transport === 'websocket') {
      const url = this.#urls[this.#urlIndex]!;
      const query = token !== undefined ? `token=${encodeURIComponent(token)}` : `user=${encodeURIComponent(user ?? '')}`;
      return new WebSocketConnection(this.#webSocket!, `${url}${url.includes('?') ? '&' : '?'}${query}`, handlers);
    }
    const stream = this.#sseUrls[this.#urlIndex % this.#sseUrls.length]!;
    return new EventStreamConnection({
      streamUrl: token !== undefined ? stream : `${stream}${stream.includes('?') ? '&' : '?'}user=${encodeURIComponent(user ?? '')}`,
      postUrl: postUrlOf(stream),
      headers: token !== undefined ? { Authorization: `Bearer ${token}` } : {},
      fetch: this.#fetch!,
      silenceMs: streamSilenceMs,
      // Half the request's time: a POST stuck on a dead connection is sent again in time for its answer.
      postTimeoutMs: Math.max(1000, requestTimeoutMs / 2),
      failingForMs: requestTimeoutMs,
    }, handlers);
  }

  /**
   * The attempt failed before `welcome`. Ended without a word from the server
   * (refused, reset, stalled): the next transport of the round, at once; a
   * close with a code: the server was reached and said why, so a backoff.
   */
  #dialFailed(code: number, reason: string): void {
    const attempt = this.#dialing;
    if (attempt === null) return;
    clearTimeout(attempt.timer);
    this.#dialing = null;
    if (this.#state === 'closed') return;
    if (isFinal(code)) return this.#goOffline(code, reason);
    const unreached = code === ABNORMAL_CLOSURE;
    if (unreached && attempt.conn.transport === 'websocket') this.#webSocketFailed = true;
    if (unreached && this.#round.length > 0) return this.#dialNext();
    this.#retryLater(code, reason);
  }

  #adopt(welcome: WelcomeFrame): void {
    const attempt = this.#dialing!;
    clearTimeout(attempt.timer);
    this.#dialing = null;
    this.#conn = attempt.conn;
    this.#welcome = welcome;
    if (attempt.conn.transport === 'websocket') this.#choice.webSocketWorked();
    else if (this.#webSocketFailed) this.#choice.webSocketFailed();
    this.#scheduleProbe();
    void this.#resume();
  }

  #onClose(code: number, reason: string): void {
    this.#conn = null;
    this.#dropped('connection lost before the answer; the request may or may not have taken effect');
    if (this.#state === 'closed') return;
    if (isFinal(code)) return this.#goOffline(code, reason);
    this.#retryLater(code, reason);
  }

  /** The current connection is gone: sends in flight go out again after the next rejoin; other requests fail. */
  #dropped(reason: string): void {
    this.#ready = false;
    this.#cancelProbe();
    this.#outbox.close();
    this.#failPending(reason);
  }

  /** 1008 (policy) and 4000 (the application disconnected the user): no reconnect. */
  #goOffline(code: number, reason: string): void {
    this.#setState('offline', { code, reason });
    this.#outbox.failAll(code === CloseCode.DISCONNECTED ? 'disconnected by the application; not retrying' : 'the server refused this connection (policy); not retrying');
  }

  #retryLater(code: number, reason: string): void {
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

  #abandon(attempt: Attempt | null): void {
    if (attempt === null) return;
    clearTimeout(attempt.timer);
    attempt.conn.close(CloseCode.NORMAL, 'bye');
  }

  // ---- back to a WebSocket ---------------------------------------------------------

  /**
   * On the fallback while a WebSocket is preferred: once the remembered
   * fallback is over, a WebSocket is tried beside the stream (a little jitter
   * keeps the clients that fell back together from all trying at once).
   */
  #scheduleProbe(): void {
    clearTimeout(this.#probeTimer);
    const conn = this.#conn;
    if (conn === null || !this.#choice.prefersWebSocketTo(conn.transport)) return;
    const left = this.#choice.webSocketBrokenUntil - Date.now();
    const wait = left > 0 ? left : this.#options.fallbackMemoryMs;
    this.#probeTimer = setTimeout(() => {
      if (this.#conn !== conn || this.#probe !== null) return;
      this.#probe = this.#attemptOn('websocket', () => this.#probeFailed());
    }, wait * (1 + Math.random() * WEBSOCKET_PROBE_JITTER));
  }

  #probeFailed(): void {
    if (this.#probe === null) return;
    clearTimeout(this.#probe.timer);
    this.#probe = null;
    this.#choice.webSocketFailed();
    this.#scheduleProbe();
  }

  #cancelProbe(): void {
    clearTimeout(this.#probeTimer);
    this.#abandon(this.#probe);
    this.#probe = null;
  }

  /** The probe said `welcome`: it becomes the connection (a reconnect without the wait: rejoin with since, resend). */
  #moveToProbe(welcome: WelcomeFrame): void {
    const probe = this.#probe!;
    clearTimeout(probe.timer);
    this.#probe = null;
    const old = this.#conn;
    this.#conn = null;
    old?.close(CloseCode.NORMAL, 'moving to a WebSocket');
    this.#dropped('moved to a WebSocket before the answer; the request may or may not have taken effect');
    this.#choice.webSocketWorked();
    this.#conn = probe.conn;
    this.#welcome = welcome;
    void this.#resume();
  }

  /** After `welcome`: rejoin every room with since, then send what waits (resends first). */
  async #resume(): Promise<void> {
    const conn = this.#conn;
    const rejoins = [...this.#rooms].map(([room, since]) => this.#joinFrame(room, since).catch(() => undefined));
    await Promise.all(rejoins);
    if (conn === null || conn !== this.#conn) return; // dropped again meanwhile: the next welcome resumes
    this.#attempt = 0;
    this.#ready = true;
    this.#setState('connected', { node: this.#welcome?.node, transport: conn.transport });
    this.#outbox.open((frame) => conn.send(frame));
    if (this.#unread.used) void this.#refreshRooms(conn);
  }

  /**
   * After a (re)connect: the list from its start, in the largest pages, until
   * every room known before is in it, or the list ends; then a known room not
   * listed, and not told of since the refresh began (a conversation opened
   * meanwhile), is no longer the user's. Stops when the connection changes
   * (the next one refreshes) or a request fails (the counts stay as they were).
   */
  async #refreshRooms(conn: Connection): Promise<void> {
    const refresh = ++this.#refreshes;
    const since = this.#unread.mark();
    const unseen = new Set(this.#unread.rooms());
    let before: string | undefined;
    try {
      do {
        const frame = { type: 'rooms' as const, limit: ROOMS_MAX_LIMIT, ...(before !== undefined && { before }) };
        const page = (await this.#request(frame, (answer) => {
          if (answer.type === 'rooms' && refresh === this.#refreshes) this.#takeRooms(answer, true);
        })) as RoomsFrame;
        if (refresh !== this.#refreshes || conn !== this.#conn) return;
        for (const entry of page.rooms) unseen.delete(entry.room);
        before = page.next;
      } while (before !== undefined && unseen.size > 0);
    } catch {
      return;
    }
    const gone = [...unseen].filter((room) => !this.#unread.changedSince(room, since));
    this.#forgetRooms(gone);
  }

  #takeRooms(page: RoomsFrame, refresh: boolean): void {
    const before = this.#unread.total;
    for (const entry of page.rooms) this.#unread.takeEntry(entry);
    this.emit('rooms', page, { refresh });
    this.#emitTotal(before);
  }

  #onUnread(frame: UnreadFrame): void {
    const before = this.#unread.total;
    if (!this.#unread.takeFrame(frame)) return;
    const held = this.#unread.get(frame.room)!;
    const newest = frame.last !== undefined && held.last != null ? { last: held.last } : {};
    this.emit('unread', { ...frame, count: held.count, read: held.read, ...newest });
    this.#emitTotal(before);
  }

  #forgetRooms(rooms: string[]): void {
    const before = this.#unread.total;
    for (const room of rooms) this.#unread.forget(room);
    this.#emitTotal(before);
  }

  #emitTotal(before: number): void {
    if (this.#unread.total !== before) this.emit('unreadTotal', this.#unread.total);
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

  #onFrame(frame: ServerFrame): void {
    switch (frame.type) {
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
      case 'unread':
        this.#onUnread(frame); // and, with a ref, the answer to a read below
        break;
      case 'edit':
      case 'delete':
      case 'reaction':
        return this.#onChange(frame);
      default:
        break;
    }
    const ref = 'ref' in frame ? frame.ref : undefined;
    if (ref === undefined && frame.type === 'joined') return this.#joinedByServer(frame);
    if (ref === undefined && frame.type === 'left') {
      this.#rooms.delete(frame.room);
      this.#rosters.delete(frame.room);
      // The backend took the user out: of a members-only room, that is its membership gone.
      this.#forgetRooms([frame.room]);
      return this.emit('left', frame);
    }
    if (ref !== undefined && this.#outbox.answer(ref, frame)) return;
    const pending = ref === undefined ? undefined : this.#pending.get(ref);
    if (pending === undefined) {
      if (frame.type === 'error') this.emit('error', frame);
      if (frame.type === 'joined' && this.#rooms.has(frame.room)) this.#lateJoined(frame);
      return;
    }
    this.#pending.delete(ref!);
    clearTimeout(pending.timer);
    if (frame.type === 'error') return pending.reject(new ChatRequestError(frame.code, frame.message));
    pending.onAnswer?.(frame);
    pending.resolve(frame);
  }

  /**
   * The answer to a (re)join that had timed out: the gateway joined the room
   * after all, so its history is taken now (each message once, by id) rather
   * than leaving the application without what it missed.
   */
  #lateJoined(frame: JoinedFrame): void {
    this.#takeRoster(frame);
    this.#takeHistory(frame);
    this.emit('joined', frame, { resumed: frame.recovered !== undefined, gap: frame.recovered === false });
    this.#emitMembers(frame.room);
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

  /**
   * A change moves the room's position like a message, so a rejoin starts after
   * it, but is passed on even at or below it: a rejoin replays the changes made
   * while away right after `joined`, whose position is already past them, and
   * applying one twice changes nothing.
   */
  #onChange(change: ChangeEventFrame): void {
    if (!this.#rooms.has(change.room)) return;
    const newest = this.#rooms.get(change.room);
    if (newest === undefined || compareIds(change.id, newest) > 0) this.#rooms.set(change.room, change.id);
    this.#unread.change(change.room, (last) => applyChange(last, change, this.#welcome?.user ?? ''));
    this.emit('change', change);
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
      const conn = this.#conn;
      if (conn === null) {
        reject(new ChatRequestError('disconnected', 'not connected'));
        return;
      }
      const ref = this.#nextRef();
      const timer = setTimeout(() => {
        this.#pending.delete(ref);
        reject(new ChatRequestError('timeout', `no answer within ${this.#options.requestTimeoutMs} ms`));
      }, this.#options.requestTimeoutMs);
      this.#pending.set(ref, { resolve, reject, timer, onAnswer });
      conn.send({ ...frame, ref });
    });
  }

  #deliver(frame: Outgoing): Promise<ServerFrame> {
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

  #setState(state: ConnectionState, detail: StateDetail): void {
    if (state === this.#state && state !== 'reconnecting' && detail.transport === this.#stateTransport) return;
    this.#state = state;
    this.#stateTransport = detail.transport;
    this.emit('state', state, detail);
  }
}

/** A random index of `count` other than `current` (itself when it is the only one). */
function otherIndex(current: number, count: number): number {
  if (count < 2) return current;
  const pick = Math.floor(Math.random() * (count - 1));
  return pick >= current ? pick + 1 : pick;
}

/** 1008 (policy: flooding, an expired token) and 4000 (disconnected by the application): not retried. */
function isFinal(code: number): boolean {
  return code === CloseCode.POLICY_VIOLATION || code === CloseCode.DISCONNECTED;
}

/** The fallback's stream URL for a WebSocket URL: ws(s) -> http(s), a final `/ws` -> `/sse`. */
export function streamUrlOf(webSocketUrl: string): string {
  const url = new URL(webSocketUrl, (globalThis as { location?: { href: string } }).location?.href);
  if (url.protocol === 'ws:') url.protocol = 'http:';
  else if (url.protocol === 'wss:') url.protocol = 'https:';
  url.pathname = url.pathname.endsWith('/ws') ? `${url.pathname.slice(0, -3)}/sse` : `${url.pathname.replace(/\/$/, '')}/sse`;
  return url.href;
}

/** Where a stream's client POSTs its frames: the stream's path + `/send`, without its query. */
function postUrlOf(streamUrl: string): string {
  const url = new URL(streamUrl, (globalThis as { location?: { href: string } }).location?.href);
  url.search = '';
  url.pathname = `${url.pathname.replace(/\/$/, '')}/send`;
  return url.href;
}

function hostOf(url: string): string {
  try {
    return new URL(url, (globalThis as { location?: { href: string } }).location?.href).host;
  } catch {
    return url;
  }
}
