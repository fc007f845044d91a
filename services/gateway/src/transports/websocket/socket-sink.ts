import type { WebSocket } from 'uWebSockets.js';
import type { Session } from '../../session.js';
import type { Frame, SocketSink } from '../frame-sink.js';

/** uWS copies user data onto the socket (own properties only), so a Session rides in a holder. */
export interface SocketData {
  session: Session;
}

/**
 * A topic every socket holds for its whole life and nothing is published to.
 * The uWS build that loads here (20.30) frees a socket's subscriber record when
 * it leaves its last topic, and with it the frames published to the socket but
 * not yet written: a socket in one room that leaves the topic for a moment (a
 * publish that skips it, a rejoin) lost the message published just before.
 * Fixed upstream in uWebSockets v20.49 (7da88ce, "Do not free subscriber on last
 * unsubscription"); holding this topic keeps the record on older builds.
 */
const ANCHOR_TOPIC = 'anchor';

/** A uWS WebSocket as a session's sink. Only used while the socket is open (Session detaches it in the close handler). */
export class WebSocketSink implements SocketSink {
  readonly transport = 'ws';

  constructor(private readonly ws: WebSocket<SocketData>) {
    ws.subscribe(ANCHOR_TOPIC);
  }

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
