import { encodeClientFrame, parseServerFrame, type ClientFrame } from './protocol.js';
import { ABNORMAL_CLOSURE, type Connection, type ConnectionHandlers } from './transport.js';

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

const OPEN = 1;
const ignore = (): void => {};

/** The global WebSocket as a factory (browsers, Node 22+), or undefined where there is none. */
export function globalWebSocket(): WebSocketFactory | undefined {
  const WebSocket = (globalThis as { WebSocket?: new (url: string) => WebSocketLike }).WebSocket;
  return typeof WebSocket === 'function' ? (url) => new WebSocket(url) : undefined;
}

/** A connection over a WebSocket: one text frame per protocol frame. */
export class WebSocketConnection implements Connection {
  readonly transport = 'websocket';
  readonly #ws: WebSocketLike | null;
  /** Frames sent before the socket opened. */
  #early: string[] = [];
  #over = false;

  /** `url` carries the identity already. A factory that throws (no WebSocket here) is a connection that failed. */
  constructor(factory: WebSocketFactory, url: string, private readonly handlers: ConnectionHandlers) {
    let ws: WebSocketLike | null = null;
    try {
      ws = factory(url);
    } catch (err) {
      queueMicrotask(() => this.#end(ABNORMAL_CLOSURE, `no WebSocket: ${(err as Error).message}`));
    }
    this.#ws = ws;
    if (ws === null) return;
    ws.onopen = () => {
      for (const data of this.#early) ws.send(data);
      this.#early = [];
    };
    ws.onmessage = (event) => {
      if (this.#over) return;
      const frame = parseServerFrame(String(event.data));
      if (frame !== null) handlers.frame(frame);
    };
    ws.onclose = (event) => this.#end(event.code, event.reason);
    ws.onerror = ignore; // a close follows; `ws` in Node throws on an error nobody listens to
  }

  send(frame: ClientFrame): void {
    const ws = this.#ws;
    if (this.#over || ws === null) return;
    const data = encodeClientFrame(frame);
    if (ws.readyState === OPEN) ws.send(data);
    else this.#early.push(data);
  }

  close(code: number, reason: string): void {
    if (this.#over) return;
    this.#over = true;
    const ws = this.#ws;
    if (ws === null) return;
    ws.onmessage = ignore;
    ws.onclose = ignore;
    ws.close(code, reason);
  }

  #end(code: number, reason: string): void {
    if (this.#over) return;
    this.#over = true;
    this.handlers.closed(code, reason);
  }
}
