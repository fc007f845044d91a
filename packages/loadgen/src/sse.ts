import http from 'node:http';

/**
 * The pieces of the fallback transport's client (PROTOCOL.md, "Fallback transport:
 * Server-Sent Events down, HTTP POST up") a load generator needs, kept lean: many
 * thousands of streams run in one worker process. node:http, not fetch: reading
 * 10,000 events/s over 1,000 streams cost 9 µs of the client's CPU per event with
 * node:http and 43 µs with fetch (undici, web streams); a POST 73 µs against 360 µs.
 */

/** The gateway's base URL (`http://host:port`) from the URL a WebSocket client is given (`ws://host:port/ws`). */
export function httpBase(url: string): string {
  const u = new URL(url);
  const protocol = u.protocol === 'wss:' || u.protocol === 'https:' ? 'https:' : 'http:';
  const path = u.pathname.replace(/\/(ws|sse)\/?$/, '').replace(/\/$/, '');
  return `${protocol}//${u.host}${path}`;
}

/**
 * Splits an event stream into events. `event(data)` gets the data of each event
 * (its `data:` lines joined by newlines), `comment()` each event with no data
 * (the gateway's heartbeats: `:` lines). Chunks may end anywhere, in the middle
 * of a line or of the blank line that ends an event. The gateway writes `\n`
 * line ends and one `data: ` line per event; `\r\n` and other fields are read
 * the slower way.
 */
export class SseParser {
  #pending = '';

  constructor(private readonly event: (data: string) => void, private readonly comment: () => void = () => {}) {}

  push(chunk: string): void {
    const text = this.#pending.length === 0 ? chunk : this.#pending + chunk;
    if (text.indexOf('\r') < 0) {
      this.#scan(text);
      return;
    }
    // `\r\n` or `\r` line ends: normalized first. A `\r` at the very end may be the
    // first half of a `\r\n`, so it waits for the next chunk.
    const held = text.endsWith('\r');
    this.#scan((held ? text.slice(0, -1) : text).replace(/\r\n?/g, '\n'));
    if (held) this.#pending += '\r';
  }

  #scan(text: string): void {
    let from = 0;
    for (let end = text.indexOf('\n\n'); end >= 0; end = text.indexOf('\n\n', from)) {
      // The gateway's case: exactly one `data: ` line.
      if (text.startsWith('data: ', from) && text.indexOf('\n', from) === end) this.event(text.slice(from + 6, end));
      else this.#general(text.slice(from, end).split('\n'));
      from = end + 2;
    }
    this.#pending = from === 0 ? text : text.slice(from);
  }

  #general(lines: string[]): void {
    const data: string[] = [];
    for (const line of lines) {
      if (line.startsWith('data:')) data.push(line.slice(line.startsWith('data: ') ? 6 : 5));
      else if (line === 'data') data.push('');
    }
    if (data.length === 0) this.comment();
    else this.event(data.join('\n'));
  }
}

/** The most frames one POST may carry (the contract's bound). */
export const MAX_FRAMES_PER_POST = 100;

/** What a POST came back with: a status (0: no answer, the error says why). */
export interface PostOutcome {
  status: number;
  body: string;
  error?: Error;
}

export type Poster = (body: string) => Promise<PostOutcome>;

/**
 * The up direction of one session: frames (JSON text) queued and sent with
 * `POST /sse/send`, one POST in flight at a time (the contract handles
 * overlapping POSTs in either order), each taking whatever queued meanwhile, up
 * to 100 frames. Frames given in one run of the event loop go in one POST.
 * `failed(outcome, frames)`: a POST that was not answered 202; the frames of it
 * and everything queued after it are dropped, and nothing more is sent.
 */
export class PostBatcher {
  #queue: string[] = [];
  #inFlight = false;
  #scheduled = false;
  #stopped = false;
  #session = '';
  /** Counts, for tests and reports: POSTs made and frames in them. */
  posts = 0;
  frames = 0;

  constructor(private readonly post: Poster, private readonly failed: (outcome: PostOutcome, frames: number) => void) {}

  /** The session the frames go to; nothing is sent before it is known. */
  start(session: string): void {
    this.#session = JSON.stringify(session);
    this.#schedule();
  }

  get queued(): number {
    return this.#queue.length;
  }

  get inFlight(): boolean {
    return this.#inFlight;
  }

  send(frame: string): void {
    if (this.#stopped) return;
    this.#queue.push(frame);
    this.#schedule();
  }

  stop(): void {
    this.#stopped = true;
    this.#queue = [];
  }

  #schedule(): void {
    if (this.#inFlight || this.#scheduled || this.#session === '' || this.#queue.length === 0) return;
    this.#scheduled = true;
    queueMicrotask(() => {
      this.#scheduled = false;
      this.#next();
    });
  }

  #next(): void {
    if (this.#stopped || this.#inFlight || this.#queue.length === 0) return;
    const batch = this.#queue.length <= MAX_FRAMES_PER_POST ? this.#queue : this.#queue.slice(0, MAX_FRAMES_PER_POST);
    this.#queue = batch === this.#queue ? [] : this.#queue.slice(MAX_FRAMES_PER_POST);
    this.#inFlight = true;
    this.posts++;
    this.frames += batch.length;
    void this.post(`{"session":${this.#session},"frames":[${batch.join(',')}]}`).then((outcome) => {
      this.#inFlight = false;
      if (outcome.status === 202) {
        this.#schedule();
        return;
      }
      const dropped = batch.length + this.#queue.length;
      this.stop();
      this.failed(outcome, dropped);
    });
  }
}

/**
 * POSTs over keep-alive connections shared by every session of this process to
 * the same gateway (and source address): at most `maxSockets` per gateway, so a
 * worker's open files stay below its limit whatever its number of senders.
 */
export function httpPoster(url: string, agent: http.Agent, localAddress?: string, timeoutMs = 30_000): Poster {
  const u = new URL(url);
  const options: http.RequestOptions = {
    host: u.hostname, port: u.port, path: `${u.pathname}${u.search}`, method: 'POST', agent, localAddress,
    headers: { 'Content-Type': 'application/json' },
  };
  return (body) => new Promise((resolve) => {
    const request = http.request({ ...options, headers: { ...options.headers, 'Content-Length': Buffer.byteLength(body) } }, (res) => {
      if (res.statusCode === 202) {
        res.resume(); // `{"accepted":N}`: nothing in it the client needs
        res.on('end', () => resolve({ status: 202, body: '' }));
        res.on('error', (error) => resolve({ status: 0, body: '', error }));
        return;
      }
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { text += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      res.on('error', (error) => resolve({ status: 0, body: text, error }));
    });
    request.setTimeout(timeoutMs, () => request.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    request.on('error', (error) => resolve({ status: 0, body: '', error }));
    request.end(body);
  });
}

let sharedAgent: http.Agent | undefined;

/** The keep-alive agent of this process's POSTs. */
export function postAgent(): http.Agent {
  return (sharedAgent ??= new http.Agent({ keepAlive: true, maxSockets: POST_SOCKETS_PER_GATEWAY, maxFreeSockets: POST_SOCKETS_PER_GATEWAY, scheduling: 'lifo' }));
}

/** POST connections a worker keeps to each gateway at most (POSTs beyond wait for one). */
export const POST_SOCKETS_PER_GATEWAY = 256;
