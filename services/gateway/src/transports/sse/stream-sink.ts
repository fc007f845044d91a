import { encodeStreamClose } from '@chat/protocol';
import type { HttpResponse } from 'uWebSockets.js';
import type { Frame, StreamSink } from '../frame-sink.js';
import { HEARTBEAT, frameEvent } from './events.js';

/**
 * An event stream (a uWS chunked response) as a session's sink.
 *
 * Backpressure: a write uWS cannot send at once stays in uWS's buffer and the
 * stream is stalled; later events wait in order in a queue here, and go out in
 * one write when uWS says the connection is writable again. Nothing is dropped:
 * a stream that stays behind is closed by the slow-consumer guard (1013), like
 * a WebSocket. uWS reports no buffered amount for responses, so `bufferedBytes`
 * is the queue plus the whole last write uWS kept (an upper bound).
 *
 * Every write is corked: most come from Redis callbacks and timers, outside any
 * uWS callback, where an uncorked write is a syscall per call.
 */
export class EventStreamSink implements StreamSink {
  readonly transport = 'sse';
  #res: HttpResponse | null;
  #queue: Uint8Array[] = [];
  #queuedBytes = 0;
  /** Bytes of the write uWS kept when the stream stalled (some may have gone out since). */
  #keptBytes = 0;
  #stalled = false;
  /** When the last write went to uWS: the heartbeat fills silences only. */
  lastWriteAt = Date.now();

  /** `ended(code)`: the stream is over (closed here with `code`, or aborted by the client: 1006); called once. */
  constructor(res: HttpResponse, private readonly ended: (code: number) => void) {
    this.#res = res;
    res.onWritable(() => this.#writable());
    res.onAborted(() => {
      if (this.#res === null) return;
      this.#res = null;
      this.#queue = [];
      this.ended(1006);
    });
  }

  get open(): boolean {
    return this.#res !== null;
  }

  send(frame: Frame): void {
    this.sendEvent(frameEvent(frame));
  }

  sendEvent(event: Uint8Array): void {
    if (this.#res === null) return;
    if (this.#stalled) {
      this.#queue.push(event);
      this.#queuedBytes += event.byteLength;
    } else {
      this.#write(this.#res, event);
    }
  }

  cork(writes: () => void): void {
    if (this.#res === null) writes();
    else this.#res.cork(writes);
  }

  bufferedBytes(): number {
    return this.#queuedBytes + this.#keptBytes;
  }

  /** Writes a comment when the stream has been silent for `silentMs` (see StreamHeartbeat). */
  heartbeat(now: number, silentMs: number): void {
    if (this.#res !== null && !this.#stalled && now - this.lastWriteAt >= silentMs) this.#write(this.#res, HEARTBEAT);
  }

  /**
   * The last event says why, after everything queued; then the response ends.
   * uWS sends what it holds before the end, or times the connection out if the
   * client reads nothing more.
   */
  close(code: number, reason: string): void {
    const res = this.#res;
    if (res === null) return;
    this.#res = null;
    const last = frameEvent(encodeStreamClose(code, reason));
    const rest = this.#queue.length === 0 ? last : Buffer.concat([...this.#queue, last]);
    this.#queue = [];
    this.#queuedBytes = 0;
    res.cork(() => {
      res.write(rest);
      res.end();
    });
    this.ended(code);
  }

  #write(res: HttpResponse, bytes: Uint8Array): void {
    let sent = true;
    res.cork(() => {
      sent = res.write(bytes);
    });
    this.lastWriteAt = Date.now();
    if (!sent) {
      this.#stalled = true;
      this.#keptBytes = bytes.byteLength;
    }
  }

  /**
   * uWS calls this when the connection drains and does not drain its own buffer
   * while a handler is set: a write does (it sends what uWS holds first). With
   * nothing queued, a heartbeat comment is that write.
   */
  #writable(): boolean {
    const res = this.#res;
    if (res === null || !this.#stalled) return true;
    const queued = this.#queue.length === 0 ? HEARTBEAT : this.#queue.length === 1 ? this.#queue[0]! : Buffer.concat(this.#queue);
    this.#queue = [];
    this.#queuedBytes = 0;
    const sent = res.write(queued);
    this.lastWriteAt = Date.now();
    this.#stalled = !sent;
    this.#keptBytes = sent ? 0 : queued.byteLength;
    return sent;
  }
}
