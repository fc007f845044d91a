import type { ClientFrame, ServerFrame } from './protocol.js';

/** How frames travel: a WebSocket, or the fallback (an event stream down, POSTs up). */
export type TransportName = 'websocket' | 'sse';

/** What a connection tells its owner. Nothing is called after the owner's own `close()`. */
export interface ConnectionHandlers {
  /** A server frame, parsed; never an event stream's `close` event, which ends the connection instead. */
  frame(frame: ServerFrame): void;
  /**
   * The connection is over, as a WebSocket close: the server's code (an event
   * stream's `close` event), or 1006 when it ended without one (network,
   * refusal, a stream that went silent, an unknown session).
   */
  closed(code: number, reason: string): void;
}

/**
 * One connection to a gateway, whatever carries it. The client above knows
 * only this: frames out, frames and one close in. Frames sent before the
 * transport can carry them wait, in order.
 */
export interface Connection {
  readonly transport: TransportName;
  send(frame: ClientFrame): void;
  /** Ends it from this side; the handlers hear nothing more. */
  close(code: number, reason: string): void;
}

/** The code for a connection that ended without a close from the server. */
export const ABNORMAL_CLOSURE = 1006;
