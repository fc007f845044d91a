import type { ClientFrame, ServerFrame } from '@chat/protocol';
import { expect, vi } from 'vitest';
import type { FetchLike } from '../src/index.js';

const encoder = new TextEncoder();
/**
 * How often the waits below look: a stream or POST is usually answered by the
 * test as soon as it is seen, and tests whose client has a 100 ms welcome
 * timeout need that to be well within it (vi.waitFor looks every 50 ms by default).
 */
const POLL_MS = 5;

function abortError(): Error {
  const err = new Error('This operation was aborted');
  err.name = 'AbortError';
  return err;
}

/** One `GET /sse` the client opened: the test plays the gateway's side of it. */
export class FakeStream {
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  #answer!: (response: Response) => void;
  #fail!: (err: Error) => void;
  readonly response: Promise<Response>;
  aborted = false;
  #ended = false;

  constructor(readonly url: string, readonly headers: Record<string, string>, signal: AbortSignal | undefined) {
    this.response = new Promise<Response>((resolve, reject) => {
      this.#answer = resolve;
      this.#fail = reject;
    });
    signal?.addEventListener('abort', () => {
      this.aborted = true;
      this.#fail(abortError());
      if (!this.#ended) {
        this.#ended = true;
        try { this.#controller?.error(abortError()); } catch { /* closed already */ }
      }
    });
  }

  /** Answers 200 with an event stream (and the comment the gateway writes at once). */
  open(): this {
    const body = new ReadableStream<Uint8Array>({ start: (controller) => { this.#controller = controller; } });
    this.#answer(new Response(body, { status: 200, headers: { 'Content-Type': 'text/event-stream' } }));
    this.write(':\n\n');
    return this;
  }

  /** Opens it and says `welcome` with `session`. */
  welcome(user = 'alice', session = 'inbox.secret-1', node = 'fake'): this {
    this.open();
    return this.push({ type: 'welcome', user, connection: `c${Math.random()}`, node, session });
  }

  refuse(status: number, body = '{"code":"forbidden","message":"no"}'): void {
    this.#answer(new Response(body, { status, headers: { 'Content-Type': 'application/json' } }));
  }

  /** Each frame as one event; all in one chunk, as one read of the socket. */
  push(...frames: ServerFrame[]): this {
    return this.write(frames.map((f) => `data: ${JSON.stringify(f)}\n\n`).join(''));
  }

  write(text: string): this {
    if (!this.#ended) this.#controller.enqueue(encoder.encode(text));
    return this;
  }

  /** The gateway closes the session: the `close` event, then the end. */
  closeWith(code: number, reason = ''): void {
    this.write(`data: ${JSON.stringify({ type: 'close', code, reason })}\n\n`);
    this.end();
  }

  /** The response ends (without a `close` event: as a crash). */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#controller.close();
  }
}

/** One `POST /sse/send`; the test answers it. */
export class FakePost {
  readonly body: { session: string; frames: Array<ClientFrame & { ref?: string; key?: string }> };
  readonly response: Promise<Response>;
  #answer!: (response: Response) => void;
  #fail!: (err: Error) => void;
  answered = false;
  aborted = false;

  constructor(readonly url: string, body: string, signal: AbortSignal | undefined) {
    this.body = JSON.parse(body) as FakePost['body'];
    this.response = new Promise((resolve, reject) => {
      this.#answer = resolve;
      this.#fail = reject;
    });
    signal?.addEventListener('abort', () => {
      this.aborted = true;
      this.#fail(abortError());
    });
  }

  answer(status = 202, body: unknown = { accepted: this.body.frames.length }): void {
    this.answered = true;
    this.#answer(new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } }));
  }

  /** No answer at all: the network failed. */
  fail(): void {
    this.answered = true;
    this.#fail(new TypeError('fetch failed'));
  }
}

/** A fake of both endpoints: every stream and POST the client made, the newest last. */
export class FakeGateway {
  readonly streams: FakeStream[] = [];
  readonly posts: FakePost[] = [];
  /** Streams refused before they open (the fetch rejects), e.g. while the gateway is down. */
  down = false;

  readonly fetch: FetchLike = (url, init) => {
    if (init.method === 'POST') {
      const post = new FakePost(url, init.body ?? '', init.signal);
      this.posts.push(post);
      return post.response;
    }
    if (this.down) return Promise.reject(new TypeError('fetch failed'));
    const stream = new FakeStream(url, init.headers ?? {}, init.signal);
    this.streams.push(stream);
    return stream.response;
  };

  stream(): FakeStream {
    const stream = this.streams.at(-1);
    if (stream === undefined) throw new Error('the client opened no stream');
    return stream;
  }

  /** The POSTs not answered yet. */
  open(): FakePost[] {
    return this.posts.filter((p) => !p.answered && !p.aborted);
  }

  /** Every frame POSTed so far, in order. */
  frames(): FakePost['body']['frames'] {
    return this.posts.flatMap((p) => p.body.frames);
  }

  /** The last frame of `type` POSTed. */
  last<T extends ClientFrame['type']>(type: T): Extract<ClientFrame, { type: T }> & { ref: string; key?: string } {
    const frame = [...this.frames()].reverse().find((f) => f.type === type);
    if (frame === undefined) throw new Error(`the client POSTed no ${type}`);
    return frame as never;
  }

  /** Waits for a POST nobody answered yet, and returns it. */
  async nextPost(): Promise<FakePost> {
    await vi.waitFor(() => expect(this.open().length).toBeGreaterThan(0), { interval: POLL_MS });
    expect(this.open()).toHaveLength(1); // one POST at a time
    return this.open()[0]!;
  }

  /** Waits for `count` streams to have been opened. */
  async streamCount(count: number): Promise<FakeStream> {
    await vi.waitFor(() => expect(this.streams.length).toBeGreaterThanOrEqual(count), { interval: POLL_MS });
    return this.streams[count - 1]!;
  }
}
