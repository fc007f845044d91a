import { ChatClient as LibraryChatClient, type WebSocketLike } from '@chat/client';
import http from 'node:http';
import { CloseCode, encodeClientFrame, parseServerFrame, type ServerFrame } from '@chat/protocol';
import type { Socket } from 'socket.io-client';
import WebSocket from 'ws';
import { httpBase, httpPoster, postAgent, PostBatcher, SseParser } from './sse.js';

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

/**
 * The transport of a run: `ws` (this protocol over WebSocket, the default; `chat` is
 * its older name), `sse` (the fallback transport: an event stream down, POSTs up),
 * `mixed` (half the clients on each), or `socketio` (the bench baseline).
 */
export type TransportName = 'ws' | 'chat' | 'sse' | 'mixed' | 'socketio';

/** The transport of one client. */
export type ClientTransport = 'ws' | 'sse' | 'socketio';

/** The transports a run's clients use, in the order reports list them. */
export function clientTransports(transport: TransportName): ClientTransport[] {
  if (transport === 'mixed') return ['ws', 'sse'];
  return [transport === 'chat' ? 'ws' : transport];
}

export interface ClientOptions {
  /** The URL to start on; a resending client knows all of `urls` and moves on by itself. */
  url: string;
  urls: string[];
  user: string;
  localAddress?: string;
  /** SSE: POST to the gateway after `url` in `urls`, so the stream's gateway gets every POST relayed. */
  relayPosts?: boolean;
  events: ClientEvents;
}

/**
 * `resend`: users of the client library (@chat/client), which reconnects and
 * rejoins by itself and resends keyed sends, instead of the lean protocol client.
 * An `sse` client is given the gateway's WebSocket URL too (`ws://host:port/ws`)
 * and uses `http://host:port/sse` and `/sse/send`.
 */
export function createClient(transport: ClientTransport, options: ClientOptions, resend = false): LoadClient {
  if (resend) return new ResendingClient(options);
  if (transport === 'sse') return new SseClient(options);
  return transport === 'ws' ? new ChatClient(options) : new SocketIoClient(options);
}

const TEXT_FIELD = '"text":"';
const ID_FIELD = '"id":"';
const ROOM_FIELD = '"room":"';

/**
 * The protocol of docs/contract/PROTOCOL.md, whatever carries the frames; room
 * messages are read without JSON.parse. Sends are answered in send order.
 */
abstract class ProtocolLoadClient implements LoadClient {
  #pending = new Map<string, (frame: { type: string }) => void>();
  #refs = 0;
  /** The sends without an answer yet: answers come in send order. */
  readonly #unanswered: Array<(ok: boolean) => void> = [];

  constructor(protected readonly options: ClientOptions) {}

  abstract connect(): Promise<string>;
  abstract close(): void;
  /** Frames can be sent now. */
  protected abstract get writable(): boolean;
  protected abstract transmit(frame: string): void;

  /** One server frame; returns it parsed unless it was a room message (read without parsing). */
  protected frame(raw: string): ServerFrame | null {
    if (raw.startsWith('{"type":"message"')) {
      this.#onMessage(raw);
      return null;
    }
    const frame = parseServerFrame(raw);
    if (frame === null) return null;
    const { events } = this.options;
    if (frame.type === 'ack') this.#answered(true);
    else if (frame.type === 'presence' || frame.type === 'occupancy') events.notice(frame.type);
    else if (frame.type === 'joined') {
      for (const m of frame.history) events.message({ room: m.room, id: m.id, text: m.text });
    } else if (frame.type === 'error' && frame.ref === undefined) this.#answered(false);
    if ('ref' in frame && frame.ref !== undefined) {
      this.#pending.get(frame.ref)?.(frame);
      this.#pending.delete(frame.ref);
    }
    return frame;
  }

  /** The connection is gone: requests still waiting fail (sends stay unanswered, as a WebSocket's would). */
  protected gone(code: number): void {
    const reply = { type: 'error', code: 'closed', message: `connection closed (${code})` };
    for (const answer of this.#pending.values()) answer(reply);
    this.#pending.clear();
  }

  join(room: string, since?: string): Promise<void> {
    return this.#request(since ? { type: 'join', room, since } : { type: 'join', room }, 'joined');
  }

  leave(room: string): Promise<void> {
    return this.#request({ type: 'leave', room }, 'left');
  }

  send(room: string, text: string, answered: (ok: boolean) => void): void {
    if (!this.writable) return answered(false);
    this.#unanswered.push(answered);
    this.transmit(`{"type":"send","room":${JSON.stringify(room)},"text":"${text}"}`);
  }

  #request(frame: { type: 'join'; room: string; since?: string } | { type: 'leave'; room: string }, answer: string): Promise<void> {
    const ref = `${frame.type[0]}${++this.#refs}`;
    return new Promise((resolve, reject) => {
      if (!this.writable) return reject(new Error(`${frame.type}: not connected`));
      this.#pending.set(ref, (reply) => (reply.type === answer ? resolve() : reject(new Error(JSON.stringify(reply)))));
      this.transmit(encodeClientFrame({ ...frame, ref }));
    });
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

/** Over `ws`. */
class ChatClient extends ProtocolLoadClient {
  #ws: WebSocket | null = null;

  connect(): Promise<string> {
    const { url, user, localAddress, events } = this.options;
    const ws = new WebSocket(`${url}${url.includes('?') ? '&' : '?'}user=${encodeURIComponent(user)}`, { localAddress, perMessageDeflate: false });
    this.#ws = ws;
    return new Promise((resolve, reject) => {
      ws.on('error', reject);
      ws.on('close', (code) => {
        this.gone(code);
        events.closed(code);
      });
      ws.on('message', (data: Buffer) => {
        const frame = this.frame(data.toString());
        if (frame?.type === 'welcome') resolve(frame.node);
      });
    });
  }

  protected get writable(): boolean {
    return this.#ws?.readyState === WebSocket.OPEN;
  }

  protected transmit(frame: string): void {
    this.#ws!.send(frame);
  }

  close(): void {
    this.#ws?.close(CloseCode.NORMAL);
  }
}

/**
 * Over the fallback transport: a `GET /sse` stream read with node:http (one
 * connection each, no agent), frames sent with `POST /sse/send` to the same
 * gateway over this process's shared keep-alive connections, one POST in flight
 * per session carrying everything queued meanwhile (PostBatcher). A POST not
 * answered 202 ends the session, as a dropped WebSocket would.
 */
class SseClient extends ProtocolLoadClient {
  #request: http.ClientRequest | null = null;
  #batcher: PostBatcher | null = null;
  #welcomed = false;
  #closed = false;
  /** The code of the stream's `close` event, if it had one. */
  #closeCode: number | undefined;

  connect(): Promise<string> {
    const { url, urls, user, localAddress, relayPosts, events } = this.options;
    const base = httpBase(url);
    const postBase = relayPosts === true && urls.length > 1 ? httpBase(urls[(urls.indexOf(url) + 1) % urls.length]!) : base;
    this.#batcher = new PostBatcher(httpPoster(`${postBase}/sse/send`, postAgent(), localAddress), (outcome) => {
      // 404: the stream is gone; 503, 4xx, no answer: the session cannot go on. Like a dropped connection.
      this.#closeCode ??= outcome.status === 404 ? 1006 : 1011;
      this.#request?.destroy();
    });
    return new Promise((resolve, reject) => {
      const request = http.get(`${base}/sse?user=${encodeURIComponent(user)}`, { agent: false, localAddress, headers: { Accept: 'text/event-stream' } }, (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          reject(new Error(`GET /sse answered ${res.statusCode}`));
          this.#end();
          return;
        }
        res.setEncoding('utf8');
        const parser = new SseParser((data) => {
          const frame = this.frame(data);
          if (frame === null) return;
          if (frame.type === 'welcome' && !this.#welcomed) {
            this.#welcomed = true;
            const { session } = frame;
            if (typeof session !== 'string') {
              reject(new Error('welcome carried no session'));
              request.destroy();
              return;
            }
            this.#batcher!.start(session);
            resolve(frame.node);
          } else if (frame.type === 'close') {
            this.#closeCode = frame.code;
          }
        });
        res.on('data', (chunk: string) => parser.push(chunk));
        res.on('error', () => {}); // an aborted response: 'close' follows
        res.on('close', () => {
          if (!this.#welcomed) reject(new Error(`stream ended before welcome${this.#closeCode === undefined ? '' : ` (close ${this.#closeCode})`}`));
          this.#end();
        });
      });
      request.on('error', (err) => {
        reject(err);
        this.#end();
      });
      this.#request = request;
    });
  }

  protected get writable(): boolean {
    return this.#welcomed && !this.#closed;
  }

  protected transmit(frame: string): void {
    this.#batcher!.send(frame);
  }

  close(): void {
    if (this.#closed) return;
    this.#closeCode ??= CloseCode.NORMAL;
    this.#request?.destroy();
  }

  /** Once: the stream is over (a `close` event, the server ending it, a failed POST, or close()). */
  #end(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#batcher?.stop();
    const code = this.#closeCode ?? 1006;
    this.gone(code);
    this.options.events.closed(code);
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
    // WebSocket only: a welcome slowed by load must not turn a WebSocket run into an SSE one.
    this.#client = new LibraryChatClient({
      transports: ['websocket'],
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
