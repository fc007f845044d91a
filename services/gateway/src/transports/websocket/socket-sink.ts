import type { WebSocket } from 'uWebSockets.js';
import type { Session } from '../../session.js';
import type { Frame, SocketSink } from '../frame-sink.js';

/** uWS copies user data onto the socket (own properties only), so a Session rides in a holder. */
export interface SocketData {
  session: Session;
}

/** A uWS WebSocket as a session's sink. Only used while the socket is open (Session detaches it in the close handler). */
export class WebSocketSink implements SocketSink {
  readonly transport = 'ws';

  constructor(private readonly ws: WebSocket<SocketData>) {}

  send(frame: Frame): void {
    this.ws.send(frame, false);
  }

  cork(writes: () => void): void {
    this.ws.cork(writes);
  }

  bufferedBytes(): number {
    return this.ws.getBufferedAmount();
  }

  /** Sends a close frame; uWS runs the close handler before this returns. */
  close(code: number, reason: string): void {
    this.ws.end(code, reason);
  }

  subscribe(topic: string): void {
    this.ws.subscribe(topic);
  }

  unsubscribe(topic: string): void {
    this.ws.unsubscribe(topic);
  }

  isSubscribed(topic: string): boolean {
    return this.ws.isSubscribed(topic);
  }

  publishExceptSelf(topic: string, frame: Frame): void {
    this.ws.publish(topic, frame, false);
  }
}
