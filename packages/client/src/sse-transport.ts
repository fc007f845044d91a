import { EventStreamParser } from './event-stream.js';
import { encodeClientFrame, parseServerFrame, type ClientFrame, type ErrorFrame } from './protocol.js';
import { ABNORMAL_CLOSURE, type Connection, type ConnectionHandlers } from './transport.js';

/**
 * The part of the Fetch API the fallback transport uses: the global `fetch`
 * of browsers and Node 18+, or any implementation of it.
 *
 * Why fetch and not EventSource: an EventSource reconnects by itself when
 * its stream ends (this client must decide when and where, and must see the
 * `close` event first), hides the status of a refused stream, cannot send an
 * `Authorization` header, and does not exist in Node 20 without a package.
 * A reader of `text/event-stream` over fetch is a few lines, needs nothing in
 * either runtime, and its silence timer is the contract's 45 s rule.
 */
export type FetchLike = (url: string, init: {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  signal?: AbortSignal;
}) => Promise<ResponseLike>;

export interface ResponseLike {
  readonly status: number;
  readonly headers: { get(name: string): string | null };
  readonly body: ReadableStream<Uint8Array> | null;
  text(): Promise<string>;
}

export interface EventStreamOptions {
  /** `GET` here opens the stream (the identity in its query, or in `headers`). */
  streamUrl: string;
  /** `POST` here sends frames; any gateway takes them. */
  postUrl: string;
  /** For both requests (e.g. `Authorization: Bearer <JWT>`). */
  headers: Record<string, string>;
  fetch: FetchLike;
  /** A stream silent this long is dead (the contract's 45 s: three missed heartbeats). */
  silenceMs: number;
  /** A POST unanswered this long is given up and sent again. */
  postTimeoutMs: number;
  /** POSTs that failed (503, no answer) for this long end the connection: the client reconnects. */
  failingForMs: number;
}

/** The contract's bounds on one POST. */
export const MAX_FRAMES_PER_POST = 100;
/** Every gateway takes a body this large (docs/protocol.md: 4 × MAX_FRAME_BYTES, at least 64 KiB); a 413 halves it. */
const POST_BYTES = 64 * 1024;
/** Backoff between attempts of a POST that failed for now (503, network): jittered, doubling, capped. */
const RETRY_MIN_MS = 250;
const RETRY_MAX_MS = 4000;

interface Queued {
  readonly data: string;
  readonly bytes: number;
  readonly ref: string | undefined;
}

const encoder = new TextEncoder();
/** How long a stream whose session a POST found gone may take to deliver its last event (see #sessionGone). */
const SESSION_GONE_GRACE_MS = 2000;

/**
 * The fallback transport (PROTOCOL.md, "Fallback transport"): server frames
 * arrive as events of one `GET` stream; client frames go out in `POST`s
 * carrying the session id the stream's `welcome` gave.
 *
 * One POST at a time, so the gateway handles frames in the order they were
 * sent (overlapping POSTs may be handled in either order); frames sent while
 * one is out go together in the next (1 to 100). Answers: 202 -> the next;
 * 404 (no gateway holds the session) -> the connection is over, for the reason
 * the stream gives if it gives one within a moment; 503 or no
 * answer -> the same frames again after a backoff (a send carries its key, so
 * a repeat stores nothing twice); 400 and 413 -> the frames are refused, and
 * each that had a `ref` is answered with an `error` as the gateway would.
 */
export class EventStreamConnection implements Connection {
  readonly transport = 'sse';
  readonly #abort = new AbortController();
  #session: string | undefined;
  #queue: Queued[] = [];
  #posting = false;
  #flushQueued = false;
  #maxBytes = POST_BYTES;
  /** When POSTs started failing for now, and how many attempts failed since. */
  #failingSince: number | undefined;
  #failures = 0;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #lastHeardAt = Date.now();
  #silenceTimer: ReturnType<typeof setTimeout> | undefined;
  #over = false;

  constructor(private readonly options: EventStreamOptions, private readonly handlers: ConnectionHandlers) {
    void this.#read();
  }

  /** The session id, once `welcome` came. */
  get session(): string | undefined {
    return this.#session;
  }

  send(frame: ClientFrame): void {
    if (this.#over) return;
    const data = encodeClientFrame(frame);
    const ref = 'ref' in frame ? frame.ref : undefined;
    this.#queue.push({ data, bytes: encoder.encode(data).byteLength, ref });
    // Frames sent in one turn of the event loop go in one POST.
    if (this.#flushQueued) return;
    this.#flushQueued = true;
    queueMicrotask(() => {
      this.#flushQueued = false;
      void this.#flush();
    });
  }

  close(_code: number, _reason: string): void {
    // The session ends with the request; the gateway sees the client leave (1006 in its metrics).
    this.#stop();
  }

  // ---- the stream ------------------------------------------------------------------

  async #read(): Promise<void> {
    const { streamUrl, headers, fetch } = this.options;
    let body: ReadableStream<Uint8Array>;
    try {
      const response = await fetch(streamUrl, { headers: { Accept: 'text/event-stream', ...headers }, signal: this.#abort.signal });
      if (response.status !== 200 || response.body === null) {
        const text = await response.text().catch(() => '');
        return this.#end(ABNORMAL_CLOSURE, `stream refused: HTTP ${response.status}${text ? ` ${text.slice(0, 200)}` : ''}`);
      }
      const type = response.headers.get('content-type') ?? '';
      if (!type.startsWith('text/event-stream')) {
        void response.body.cancel().catch(() => {});
        return this.#end(ABNORMAL_CLOSURE, `not an event stream (${type || 'no content type'})`);
      }
      body = response.body;
    } catch (err) {
      return this.#end(ABNORMAL_CLOSURE, `stream not opened: ${describe(err)}`);
    }
    this.#heard();
    const parser = new EventStreamParser((data) => this.#event(data));
    const decoder = new TextDecoder();
    const reader = body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (this.#over) return;
        if (done) break;
        this.#lastHeardAt = Date.now();
        parser.push(decoder.decode(value, { stream: true }));
        if (this.#over) return;
      }
    } catch (err) {
      return this.#end(ABNORMAL_CLOSURE, `stream broken: ${describe(err)}`);
    } finally {
      if (this.#over) void reader.cancel().catch(() => {});
    }
    this.#end(ABNORMAL_CLOSURE, 'the stream ended without a close event');
  }

  #event(data: string): void {
    if (this.#over) return;
    const frame = parseServerFrame(data);
    if (frame === null) return;
    if (frame.type === 'close') return this.#end(frame.code, frame.reason);
    if (frame.type === 'welcome' && this.#session === undefined) {
      if (frame.session === undefined) return this.#end(ABNORMAL_CLOSURE, 'the stream\'s welcome carried no session');
      this.#session = frame.session;
      void this.#flush();
    }
    this.handlers.frame(frame);
  }

  /** Arms the dead-stream timer; every chunk read moves `#lastHeardAt`, the timer re-arms itself for the rest. */
  #heard(): void {
    const check = (): void => {
      const silent = Date.now() - this.#lastHeardAt;
      if (silent >= this.options.silenceMs) this.#end(ABNORMAL_CLOSURE, `the stream was silent for ${silent} ms`);
      else this.#silenceTimer = setTimeout(check, this.options.silenceMs - silent);
    };
    this.#silenceTimer = setTimeout(check, this.options.silenceMs);
  }

  // ---- posting ---------------------------------------------------------------------

  async #flush(): Promise<void> {
    if (this.#over || this.#posting || this.#retryTimer !== undefined || this.#session === undefined || this.#queue.length === 0) return;
    const batch = this.#take();
    const body = `{"session":${JSON.stringify(this.#session)},"frames":[${batch.map((q) => q.data).join(',')}]}`;
    this.#posting = true;
    const status = await this.#post(body);
    this.#posting = false;
    if (this.#over) return;
    if (status >= 200 && status < 300) {
      this.#failingSince = undefined;
      this.#failures = 0;
    } else if (status === 404) {
      return this.#sessionGone();
    } else if (status === 413 && batch.length > 1) {
      this.#maxBytes = Math.max(1, Math.floor(batch.reduce((n, q) => n + q.bytes, 0) / 2));
      this.#queue.unshift(...batch);
    } else if (status === 413 || (status >= 400 && status < 500 && status !== 408 && status !== 429)) {
      this.#refuse(batch, status);
    } else {
      // 503, another 5xx, 408/429, no answer at all: the frames may or may not have been handled; again, later.
      this.#queue.unshift(...batch);
      return this.#retryLater();
    }
    void this.#flush();
  }

  /** The next POST's frames: as many as the bounds allow, at least one. */
  #take(): Queued[] {
    let bytes = 0;
    let count = 0;
    for (const q of this.#queue) {
      if (count === MAX_FRAMES_PER_POST || (count > 0 && bytes + q.bytes > this.#maxBytes)) break;
      bytes += q.bytes + 1;
      count++;
    }
    return this.#queue.splice(0, count);
  }

  /** The POST's status, or 0 when it got none (network, timeout). */
  async #post(body: string): Promise<number> {
    const { postUrl, headers, fetch, postTimeoutMs } = this.options;
    const abort = new AbortController();
    const stop = (): void => abort.abort();
    this.#abort.signal.addEventListener('abort', stop);
    const timer = setTimeout(stop, postTimeoutMs);
    try {
      const response = await fetch(postUrl, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body, signal: abort.signal });
      await response.text().catch(() => '');
      return response.status;
    } catch {
      return 0;
    } finally {
      clearTimeout(timer);
      this.#abort.signal.removeEventListener('abort', stop);
    }
  }

  #retryLater(): void {
    const now = Date.now();
    this.#failingSince ??= now;
    if (now - this.#failingSince >= this.options.failingForMs) {
      return this.#end(ABNORMAL_CLOSURE, `POSTs to the gateway failed for ${now - this.#failingSince} ms`);
    }
    const ceiling = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** this.#failures++);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      void this.#flush();
    }, ceiling / 2 + Math.random() * (ceiling / 2));
  }

  /** Frames the gateway refused as a whole: each request among them gets the `error` it would have got on a WebSocket. */
  #refuse(batch: Queued[], status: number): void {
    const code: ErrorFrame['code'] = status === 413 ? 'payload_too_large' : 'bad_request';
    for (const { ref } of batch) {
      if (ref !== undefined && !this.#over) this.handlers.frame({ type: 'error', ref, code, message: `POST /sse/send answered HTTP ${status}` });
    }
  }

  // ---- ending ----------------------------------------------------------------------

  /**
   * A POST was answered 404: the gateway no longer holds the session, so its
   * stream is ending too. The stream says why (a `close` event: 4000 must not be
   * retried) on another connection, which may come after this answer: it gets a
   * moment to, and only a stream that neither says nor ends counts as 1006.
   */
  #sessionGone(): void {
    this.#retryTimer = setTimeout(() => this.#end(ABNORMAL_CLOSURE, 'unknown session: no gateway holds this stream any more'), SESSION_GONE_GRACE_MS);
  }

  #stop(): void {
    if (this.#over) return;
    this.#over = true;
    clearTimeout(this.#silenceTimer);
    clearTimeout(this.#retryTimer);
    this.#queue = [];
    this.#abort.abort();
  }

  #end(code: number, reason: string): void {
    if (this.#over) return;
    this.#stop();
    this.handlers.closed(code, reason);
  }
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = (err as { cause?: unknown }).cause;
  return cause instanceof Error ? `${err.message} (${cause.message})` : err.message;
}
