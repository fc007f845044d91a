import {
  CloseCode,
  compareIds,
  parseServerFrame,
  type AckFrame,
  type ClientFrame,
  type DirectMessageFrame,
  type ErrorFrame,
  type HistoryFrame,
  type JoinedFrame,
  type MessageFrame,
  type PresenceFrame,
  type ServerFrame,
  type TypingEventFrame,
  type WelcomeFrame,
} from '@chat/protocol';
import { Emitter } from './emitter.js';

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
  /** The gateway's WebSocket URL, e.g. wss://chat.example.com/ws; with several, each reconnect tries the next. */
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
  /** Reconnect backoff: first delay, and the cap. Defaults 250 ms and 10 s; each delay is jittered. */
  backoffMinMs?: number;
  backoffMaxMs?: number;
}

export interface ChatClientEvents extends Record<string, (...args: never[]) => void> {
  /** Every room message once, in order, across reconnects: history from `joined` first, then live. */
  message(message: MessageFrame): void;
  presence(event: PresenceFrame): void;
  typing(event: TypingEventFrame): void;
  dm(message: DirectMessageFrame): void;
  state(state: ConnectionState, detail: { code?: number; reason?: string; node?: string }): void;
  /** A (re)join completed; `gap` is true when messages after the last one seen are no longer stored. */
  joined(frame: JoinedFrame, info: { resumed: boolean; gap: boolean }): void;
  /** An `error` frame that answered no pending request. */
  error(error: ErrorFrame): void;
}

/** An `error` frame received for a request. */
export class ChatRequestError extends Error {
  override readonly name = 'ChatRequestError';
  constructor(readonly code: ErrorFrame['code'] | 'disconnected' | 'timeout' | 'queue_full', message: string) {
    super(message);
  }
}

interface Pending {
  resolve(frame: ServerFrame): void;
  reject(error: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

interface QueuedSend {
  frame: ClientFrame & { ref: string };
  pending: Omit<Pending, 'timer'>;
}

const OPEN = 1;

/**
 * A chat client that reconnects by itself: after a reconnect it rejoins its rooms
 * with `since` = the last id it saw, so the application sees every message once,
 * in order, with no gap. Close codes are honoured: 1001 (node going away)
 * reconnects at once, 1008 (policy: flooding, expired token) does not retry and
 * goes `offline`; anything else retries with jittered exponential backoff.
 * Sends made while disconnected are queued (up to `queueLimit`) and sent after
 * the rooms are rejoined; a send whose connection dropped before its `ack` fails
 * with code `disconnected` (it may or may not have been stored).
 */
export class ChatClient extends Emitter<ChatClientEvents> {
  readonly #options: Required<Omit<ChatClientOptions, 'user' | 'token' | 'webSocket' | 'url'>> & Pick<ChatClientOptions, 'user' | 'token'>;
  readonly #urls: string[];
  #urlIndex = 0;
  readonly #factory: WebSocketFactory;
  /** room -> newest id seen (undefined: joined, nothing seen yet) */
  readonly #rooms = new Map<string, string | undefined>();
  readonly #pending = new Map<string, Pending>();
  readonly #queue: QueuedSend[] = [];
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
    this.#options = { queueLimit: 100, requestTimeoutMs: 10_000, backoffMinMs: 250, backoffMaxMs: 10_000, ...rest };
    const factory = options.webSocket ?? ((url: string) => new (globalThis as unknown as { WebSocket: new (u: string) => WebSocketLike }).WebSocket(url));
    this.#factory = factory;
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

  /** Joins a room (and rejoins it after every reconnect); history arrives as `message` events. */
  async join(room: string): Promise<JoinedFrame> {
    const since = this.#rooms.get(room);
    if (!this.#rooms.has(room)) this.#rooms.set(room, undefined);
    return this.#joinFrame(room, since);
  }

  async leave(room: string): Promise<void> {
    this.#rooms.delete(room);
    await this.#request({ type: 'leave', room });
  }

  /** Resolves with the `ack`; queued while disconnected. */
  send(room: string, text: string): Promise<AckFrame> {
    return this.#requestOrQueue({ type: 'send', room, text }) as Promise<AckFrame>;
  }

  dm(to: string, text: string): Promise<AckFrame> {
    return this.#requestOrQueue({ type: 'dm', to, text }) as Promise<AckFrame>;
  }

  /** Best effort: dropped while disconnected. */
  typing(room: string): void {
    if (this.#ready) this.#ws?.send(JSON.stringify({ type: 'typing', room }));
  }

  async history(room: string, options: { before?: string; limit?: number } = {}): Promise<MessageFrame[]> {
    const frame = (await this.#request({ type: 'history', room, ...options })) as HistoryFrame;
    return frame.messages;
  }

  // ---- connection ----------------------------------------------------------------

  #open(state: ConnectionState): void {
    this.#setState(state, {});
    const { user, token } = this.#options;
    const url = this.#urls[this.#urlIndex % this.#urls.length]!;
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
    for (const [ref, p] of this.#pending) {
      clearTimeout(p.timer);
      p.reject(new ChatRequestError('disconnected', 'connection lost before the answer; the request may or may not have taken effect'));
      this.#pending.delete(ref);
    }
    if (this.#state === 'closed') return;
    if (code === CloseCode.POLICY_VIOLATION) {
      this.#setState('offline', { code, reason });
      this.#failQueue('the server refused this connection (policy); not retrying');
      return;
    }
    const delay = code === CloseCode.GOING_AWAY ? Math.random() * 250 : this.#backoff();
    this.#urlIndex++;
    this.#setState('reconnecting', { code, reason });
    this.#retryTimer = setTimeout(() => this.#open('reconnecting'), delay);
  }

  #backoff(): number {
    const { backoffMinMs, backoffMaxMs } = this.#options;
    const ceiling = Math.min(backoffMaxMs, backoffMinMs * 2 ** this.#attempt++);
    return ceiling / 2 + Math.random() * (ceiling / 2);
  }

  /** After `welcome`: rejoin every room with since, then flush queued sends. */
  async #resume(): Promise<void> {
    const rejoins = [...this.#rooms].map(([room, since]) => this.#joinFrame(room, since).catch(() => undefined));
    await Promise.all(rejoins);
    this.#attempt = 0;
    this.#ready = true;
    this.#setState('connected', { node: this.#welcome?.node });
    for (const queued of this.#queue.splice(0)) this.#dispatch(queued.frame, queued.pending);
  }

  async #joinFrame(room: string, since: string | undefined): Promise<JoinedFrame> {
    const frame = (await this.#request(since === undefined ? { type: 'join', room } : { type: 'join', room, since })) as JoinedFrame;
    for (const m of frame.history) this.#onMessage(m);
    this.emit('joined', frame, { resumed: since !== undefined, gap: frame.recovered === false });
    return frame;
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
        return this.emit('presence', frame);
      case 'typing':
        return this.emit('typing', frame);
      case 'dm':
        return this.emit('dm', frame);
      default:
        break;
    }
    const ref = 'ref' in frame ? frame.ref : undefined;
    const pending = ref === undefined ? undefined : this.#pending.get(ref);
    if (pending === undefined) {
      if (frame.type === 'error') this.emit('error', frame);
      return;
    }
    this.#pending.delete(ref!);
    clearTimeout(pending.timer);
    if (frame.type === 'error') pending.reject(new ChatRequestError(frame.code, frame.message));
    else pending.resolve(frame);
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

  #request(frame: ClientFrame): Promise<ServerFrame> {
    return new Promise((resolve, reject) => {
      if (this.#ws === null || this.#ws.readyState !== OPEN || this.#welcome === undefined) {
        reject(new ChatRequestError('disconnected', 'not connected'));
        return;
      }
      this.#dispatch({ ...frame, ref: `r${++this.#refs}` }, { resolve, reject });
    });
  }

  #requestOrQueue(frame: ClientFrame): Promise<ServerFrame> {
    return new Promise((resolve, reject) => {
      const withRef = { ...frame, ref: `r${++this.#refs}` };
      if (this.#ready && this.#ws?.readyState === OPEN) return this.#dispatch(withRef, { resolve, reject });
      if (this.#state === 'closed' || this.#state === 'offline') return reject(new ChatRequestError('disconnected', `client is ${this.#state}`));
      if (this.#queue.length >= this.#options.queueLimit) {
        return reject(new ChatRequestError('queue_full', `${this.#options.queueLimit} sends already wait for the connection`));
      }
      this.#queue.push({ frame: withRef, pending: { resolve, reject } });
    });
  }

  #dispatch(frame: ClientFrame & { ref: string }, pending: Omit<Pending, 'timer'>): void {
    const timer = setTimeout(() => {
      this.#pending.delete(frame.ref);
      pending.reject(new ChatRequestError('timeout', `no answer within ${this.#options.requestTimeoutMs} ms`));
    }, this.#options.requestTimeoutMs);
    this.#pending.set(frame.ref, { ...pending, timer });
    this.#ws!.send(JSON.stringify(frame));
  }

  #failQueue(reason: string): void {
    for (const queued of this.#queue.splice(0)) queued.pending.reject(new ChatRequestError('disconnected', reason));
  }

  #failAll(reason: string): void {
    this.#failQueue(reason);
    for (const [ref, p] of this.#pending) {
      clearTimeout(p.timer);
      p.reject(new ChatRequestError('disconnected', reason));
      this.#pending.delete(ref);
    }
  }

  #setState(state: ConnectionState, detail: { code?: number; reason?: string; node?: string }): void {
    if (state === this.#state && state !== 'reconnecting') return;
    this.#state = state;
    this.emit('state', state, detail);
  }
}
