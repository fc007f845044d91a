/** A frame as it goes to a client: JSON text, or bytes relayed from the broker as they are. */
export type Frame = string | Uint8Array;

export const TRANSPORTS = ['ws', 'sse'] as const;
export type TransportName = (typeof TRANSPORTS)[number];

/**
 * What a session writes to, whatever carries it (centrifuge's Transport). A
 * session holds one and never learns which: command handling, rooms, limits and
 * drains are written once over this.
 */
interface SinkBase {
  send(frame: Frame): void;
  /** Packs the writes `writes` makes into one syscall; needed around writes made outside a uWS callback. */
  cork(writes: () => void): void;
  /** Bytes written but not yet taken by the client's connection. */
  bufferedBytes(): number;
  /** Ends the connection with a protocol close code; the transport's close handling follows. */
  close(code: number, reason: string): void;
}

/** A WebSocket: uWS fans a room's frames out to it natively through a topic. */
export interface SocketSink extends SinkBase {
  readonly transport: 'ws';
  subscribe(topic: string): void;
  unsubscribe(topic: string): void;
  isSubscribed(topic: string): boolean;
  /** To every subscriber of `topic` but this socket. */
  publishExceptSelf(topic: string, frame: Frame): void;
}

/** An event stream: no native topics, so a room writes each frame to it, framed once per publish. */
export interface StreamSink extends SinkBase {
  readonly transport: 'sse';
  /** A frame already framed as an event (see frameEvent). */
  sendEvent(event: Uint8Array): void;
}

export type FrameSink = SocketSink | StreamSink;
