import type { Identity } from './auth.js';
import type { Logger } from './logger.js';
import { TokenBucket } from './token-bucket.js';
import type { Frame, FrameSink, TransportName } from './transports/frame-sink.js';

export interface SessionLimits {
  rateLimitPerSec: number;
  rateLimitBurst: number;
  /** Frames refused for rate within about ten seconds before the connection is closed with 1008. */
  rateLimitCloseAfter: number;
}

const noop = (): void => {};

/**
 * One connection, over a WebSocket or an event stream: who it is, its rate
 * limit, its sends under way (which rooms it is in is RoomRegistry's to say).
 * Every write goes through here, so nothing is ever written to a connection
 * its transport already closed (uWS would throw).
 */
export class Session {
  #sink: FrameSink | null = null;
  #bucket: TokenBucket;
  #strikes: TokenBucket | undefined;
  #ops: Map<string, Promise<void>> | undefined;
  /** Frames that arrived before `welcome` went out; handled right after it, in order. */
  #early: Array<() => void> | null = [];

  /** Sends under way: a drain closes the connection once they are acknowledged. */
  #sending = 0;
  #onSettled: (() => void) | undefined;

  /** Closes the connection when its token expires. */
  expiryTimer: ReturnType<typeof setTimeout> | undefined;
  /** Set by a drain: new sends and joins are refused, and the connection closes once its sends settle. */
  leaving = false;

  #log: Logger | undefined;

  constructor(
    readonly id: string,
    readonly identity: Identity,
    /** The client's address (behind trusted proxies, from X-Forwarded-For). */
    readonly address: string,
    private readonly limits: SessionLimits,
    now: number,
    private readonly parentLog: Logger,
    /** Told of every write, so buffers that fill are looked at (see SlowConsumerGuard). */
    private readonly writes: { wrote(bytes: number): void },
    readonly transport: TransportName,
  ) {
    this.#bucket = new TokenBucket(limits.rateLimitBurst, limits.rateLimitPerSec, now);
  }

  /** This connection's logger: every line names it and its user (made on first use: most connections never log). */
  get log(): Logger {
    return (this.#log ??= this.parentLog.child({ conn: this.id, user: this.user }));
  }

  get user(): string {
    return this.identity.user;
  }

  get open(): boolean {
    return this.#sink !== null;
  }

  /** What carries this connection; null once it closed. Rooms fan out through it. */
  get sink(): FrameSink | null {
    return this.#sink;
  }

  attach(sink: FrameSink): void {
    this.#sink = sink;
  }

  /** Called from the transport's close handling: the connection is gone from here on. */
  detach(): void {
    this.#sink = null;
  }

  send(data: Frame): void {
    if (this.#sink === null) return;
    this.#sink.send(data);
    this.writes.wrote(data.length);
  }

  /** Packs several writes into one syscall. */
  cork(writes: () => void): void {
    this.#sink?.cork(writes);
  }

  bufferedAmount(): number {
    return this.#sink?.bufferedBytes() ?? 0;
  }

  /** Closes with a protocol close code (a close frame, or a last `close` event on a stream). */
  end(code: number, reason: string): void {
    this.#sink?.close(code, reason);
  }

  /**
   * Runs `handle` now, or right after `welcome` if that has not gone out yet, so
   * that `welcome` is the first frame a client sees.
   */
  whenWelcomed(handle: () => void): void {
    if (this.#early === null) handle();
    else this.#early.push(handle);
  }

  /** Sends `welcome`, then handles the frames that arrived before it; drops them if the socket closed meanwhile. */
  welcome(frame: string): void {
    const early = this.#early;
    if (early === null) return;
    this.#early = null;
    if (!this.open) return;
    this.send(frame);
    for (const handle of early) handle();
  }

  /** False when the frame is over the rate limit. */
  takeToken(now: number): boolean {
    return this.#bucket.take(now);
  }

  /** Records a refused frame; false once the client has kept flooding and must be closed. */
  strike(now: number): boolean {
    this.#strikes ??= new TokenBucket(this.limits.rateLimitCloseAfter, this.limits.rateLimitCloseAfter / 10, now);
    return this.#strikes.take(now);
  }

  /** Brackets a send, so a drain can wait for its ack (see settled). */
  beginSend(): void {
    this.#sending++;
  }

  endSend(): void {
    if (--this.#sending > 0 || this.#onSettled === undefined) return;
    const settled = this.#onSettled;
    this.#onSettled = undefined;
    settled();
  }

  /** Resolves once no send of this connection is under way. */
  settled(): Promise<void> {
    return this.#sending === 0 ? Promise.resolve() : new Promise((resolve) => { this.#onSettled = resolve; });
  }

  /** Runs operations that share `key` one after another, e.g. a join and a leave of one room. */
  serialize(key: string, operation: () => Promise<void>): Promise<void> {
    const ops = (this.#ops ??= new Map());
    const next = (ops.get(key) ?? Promise.resolve()).then(operation);
    const tail = next.then(noop, noop);
    ops.set(key, tail);
    void tail.then(() => {
      if (ops.get(key) === tail) ops.delete(key);
    });
    return next;
  }
}
