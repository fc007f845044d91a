import { ChatClient as LibraryChatClient, type WebSocketLike } from '@chat/client';
import { CloseCode, encodeClientFrame, parseServerFrame } from '@chat/protocol';
import type { Socket } from 'socket.io-client';
import WebSocket from 'ws';

/** A room message as a load client sees it. */
export interface Received {
  room: string;
  id: string;
  text: string;
}

export interface ClientEvents {
  message(message: Received): void;
  /** A frame about the room's members: per-user `presence`, or `occupancy` (a room above the list limit). */
  notice(kind: 'presence' | 'occupancy'): void;
  /** The connection is gone for good (the client does not come back by itself). */
  closed(code: number): void;
  /** The client came back by itself after a drop (resend mode). */
  reconnected(): void;
}

/** One simulated user, whatever the server speaks. */
export interface LoadClient {
  /** Resolves with the node that welcomed it. */
  connect(): Promise<string>;
  join(room: string, since?: string): Promise<void>;
  leave(room: string): Promise<void>;
  /** Fire and forget; the outcome arrives as `answered(ok)`. */
  send(room: string, text: string, answered: (ok: boolean) => void): void;
  close(): void;
}

export type TransportName = 'chat' | 'socketio';

export interface ClientOptions {
  /** The URL to start on; a resending client knows all of `urls` and moves on by itself. */
  url: string;
  urls: string[];
  user: string;
  localAddress?: string;
  events: ClientEvents;
}

/**
 * `resend`: users of the client library (@chat/client), which reconnects and
 * rejoins by itself and resends keyed sends, instead of the lean protocol client.
 */
export function createClient(transport: TransportName, options: ClientOptions, resend = false): LoadClient {
  if (resend) return new ResendingClient(options);
  return transport === 'chat' ? new ChatClient(options) : new SocketIoClient(options);
}

const TEXT_FIELD = '"text":"';
const ID_FIELD = '"id":"';
const ROOM_FIELD = '"room":"';

/** The protocol of docs/contract/PROTOCOL.md over `ws`; room messages are read without JSON.parse. */
class ChatClient implements LoadClient {
  #ws: WebSocket | null = null;
  #pending = new Map<string, (frame: { type: string }) => void>();
  #refs = 0;
  /** The sends without an answer yet: answers come in send order. */
  readonly #unanswered: Array<(ok: boolean) => void> = [];

  constructor(private readonly options: ClientOptions) {}

  connect(): Promise<string> {
    const { url, user, localAddress, events } = this.options;
    const ws = new WebSocket(`${url}${url.includes('?') ? '&' : '?'}user=${encodeURIComponent(user)}`, { localAddress, perMessageDeflate: false });
    this.#ws = ws;
    return new Promise((resolve, reject) => {
      ws.on('error', reject);
      ws.on('close', (code) => events.closed(code));
      ws.on('message', (data: Buffer) => {
        const raw = data.toString();
        if (raw.startsWith('{"type":"message"')) return this.#onMessage(raw);
        const frame = parseServerFrame(raw);
        if (frame === null) return;
        if (frame.type === 'welcome') resolve(frame.node);
        else if (frame.type === 'ack') this.#answered(true);
        else if (frame.type === 'presence' || frame.type === 'occupancy') events.notice(frame.type);
        else if (frame.type === 'joined') {
          for (const m of frame.history) events.message({ room: m.room, id: m.id, text: m.text });
        } else if (frame.type === 'error' && frame.ref === undefined) this.#answered(false);
        if ('ref' in frame && frame.ref !== undefined) {
          this.#pending.get(frame.ref)?.(frame);
          this.#pending.delete(frame.ref);
        }
      });
    });
  }

  join(room: string, since?: string): Promise<void> {
    return this.#request(since ? { type: 'join', room, since } : { type: 'join', room }, 'joined');
  }

  leave(room: string): Promise<void> {
    return this.#request({ type: 'leave', room }, 'left');
  }

  send(room: string, text: string, answered: (ok: boolean) => void): void {
    if (this.#ws?.readyState !== WebSocket.OPEN) return answered(false);
    this.#unanswered.push(answered);
    this.#ws.send(`{"type":"send","room":${JSON.stringify(room)},"text":"${text}"}`);
  }

  #request(frame: { type: 'join'; room: string; since?: string } | { type: 'leave'; room: string }, answer: string): Promise<void> {
    const ref = `${frame.type[0]}${++this.#refs}`;
    return new Promise((resolve, reject) => {
      if (this.#ws?.readyState !== WebSocket.OPEN) return reject(new Error(`${frame.type}: not connected`));
      this.#pending.set(ref, (reply) => (reply.type === answer ? resolve() : reject(new Error(JSON.stringify(reply)))));
      this.#ws.send(encodeClientFrame({ ...frame, ref }));
    });
  }

  close(): void {
    this.#ws?.close(CloseCode.NORMAL);
  }

  #answered(ok: boolean): void {
    this.#unanswered.shift()?.(ok);
  }

  #onMessage(raw: string): void {
    const room = field(raw, ROOM_FIELD);
    const id = field(raw, ID_FIELD);
    const text = field(raw, TEXT_FIELD);
    if (room !== null && id !== null && text !== null) this.options.events.message({ room, id, text });
  }
}

function field(raw: string, name: string): string | null {
  const start = raw.indexOf(name);
  if (start < 0) return null;
  const from = start + name.length;
  const end = raw.indexOf('"', from);
  return end < 0 ? null : raw.slice(from, end);
}

/** The comparison server in bench/baselines/socketio-server.mjs: join/send with acks, `message` events. */
class SocketIoClient implements LoadClient {
  #socket: Socket | null = null;

  constructor(private readonly options: ClientOptions) {}

  async connect(): Promise<string> {
    const { url, user, events } = this.options;
    // Optional dependency, loaded only for the Socket.IO baseline.
    const { io } = await import('socket.io-client');
    const socket = io(url, { transports: ['websocket'], query: { user }, reconnection: false, forceNew: true });
    this.#socket = socket;
    socket.on('message', (m: Received) => events.message(m));
    socket.on('disconnect', () => events.closed(1006));
    return new Promise((resolve, reject) => {
      socket.once('connect_error', reject);
      socket.once('welcome', (node: string) => resolve(node));
    });
  }

  join(room: string): Promise<void> {
    return new Promise((resolve) => this.#socket!.emit('join', room, () => resolve()));
  }

  leave(room: string): Promise<void> {
    return new Promise((resolve) => this.#socket!.emit('leave', room, () => resolve()));
  }

  send(room: string, text: string, answered: (ok: boolean) => void): void {
    this.#socket!.emit('send', { room, text }, (ok: boolean) => answered(ok));
  }

  close(): void {
    this.#socket?.close();
  }
}

/** A user of the client library: it reconnects, rejoins with since and resends by itself. */
class ResendingClient implements LoadClient {
  readonly #client: LibraryChatClient;

  constructor(options: ClientOptions) {
    const { url, urls, user, localAddress, events } = options;
    const start = Math.max(0, urls.indexOf(url));
    this.#client = new LibraryChatClient({
      url: [...urls.slice(start), ...urls.slice(0, start)], user, queueLimit: 10_000, backoffMinMs: 100, backoffMaxMs: 2000,
      webSocket: (u) => new WebSocket(u, { localAddress, perMessageDeflate: false }) as unknown as WebSocketLike,
    });
    this.#client.on('message', (m) => events.message({ room: m.room, id: m.id, text: m.text }));
    this.#client.on('presence', () => events.notice('presence'));
    this.#client.on('occupancy', () => events.notice('occupancy'));
    let wasConnected = false;
    this.#client.on('state', (state, detail) => {
      if (state === 'connected' && wasConnected) events.reconnected();
      if (state === 'connected') wasConnected = true;
      if (state === 'offline') events.closed(detail.code ?? 1006);
    });
  }

  async connect(): Promise<string> {
    return (await this.#client.connect()).node;
  }

  async join(room: string, since?: string): Promise<void> {
    await this.#client.join(room, since === undefined ? {} : { since }); // its own rejoins are the library's
  }

  leave(room: string): Promise<void> {
    return this.#client.leave(room);
  }

  send(room: string, text: string, answered: (ok: boolean) => void): void {
    this.#client.send(room, text).then(() => answered(true), () => answered(false));
  }

  close(): void {
    this.#client.close();
  }
}
