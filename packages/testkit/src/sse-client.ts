import http from 'node:http';
import { parseServerFrame } from '@chat/protocol';
import { ProtocolClient, type CloseInfo, type Outgoing } from './protocol-client.js';
import { HttpRefusal } from './ws-client.js';

export interface SseOpenOptions {
  timeoutMs?: number;
  /** Extra query string for the stream, e.g. `token=...`. */
  query?: string;
  /** Gateways (base URLs) to POST to, in turn; by default the stream's own. */
  postTo?: readonly string[];
}

export interface PostAnswer {
  status: number;
  body: unknown;
}

/** A client close, as a WebSocket client's own close would show. */
const CLIENT_CLOSE: CloseInfo = { code: 1000, reason: 'client closed' };

/**
 * A test client over the fallback transport: a `GET /sse` stream, frames sent
 * with `POST /sse/send`, one POST at a time and in order (the contract leaves
 * overlapping POSTs unordered), each to the next gateway of `postTo`.
 */
export class SseTestClient extends ProtocolClient {
  /** SSE comments (heartbeats) heard so far, and when the last byte came. */
  comments = 0;
  lastHeardAt = Date.now();
  /** Every POST's answer, in order. */
  readonly answers: PostAnswer[] = [];
  #request: http.ClientRequest | undefined;
  #response: http.IncomingMessage | undefined;
  #posting: Promise<unknown> = Promise.resolve();
  #turn = 0;

  private constructor(readonly base: string, label: string, private readonly postTo: readonly string[]) {
    super(label);
  }

  /** Opens `<base>/sse` as `user` and waits for `welcome` (which carries the session). */
  static async open(base: string, user: string | null, { timeoutMs = 5000, query = '', postTo = [base] }: SseOpenOptions = {}): Promise<SseTestClient> {
    const client = new SseTestClient(base, user ?? 'anonymous', postTo);
    const params = [user === null ? '' : `user=${encodeURIComponent(user)}`, query].filter(Boolean).join('&');
    await client.#connect(`${base}/sse${params ? `?${params}` : ''}`);
    await client.waitForWelcome(timeoutMs);
    return client;
  }

  get session(): string {
    const session = this.welcome.session;
    if (session === undefined) throw new Error(`${this.label}: welcome carried no session`);
    return session;
  }

  /** Queues a POST of one frame (after the ones before it). */
  send(frame: Outgoing | string | Buffer): void {
    const value = typeof frame === 'object' && !Buffer.isBuffer(frame) ? frame : JSON.parse(frame.toString()) as unknown;
    void this.post([value]);
  }

  /** POSTs `frames` (after the POSTs before it) to the next gateway, or to `to`; resolves with the answer. */
  post(frames: unknown[], to?: string): Promise<PostAnswer> {
    return this.postBody(JSON.stringify({ session: this.session, frames }), to);
  }

  /** POSTs a raw body (after the POSTs before it). */
  postBody(body: string, to?: string): Promise<PostAnswer> {
    const target = to ?? this.postTo[this.#turn++ % this.postTo.length]!;
    const answer = this.#posting.then(() => postJson(`${target}/sse/send`, body));
    this.#posting = answer.catch(() => {});
    return answer.then((a) => {
      this.answers.push(a);
      return a;
    });
  }

  /** Stops reading the stream (as a client that never reads), and reads on again. */
  pause(): void {
    this.#response?.socket.pause();
  }

  resume(): void {
    this.#response?.socket.resume();
  }

  close(): Promise<CloseInfo> {
    this.#request?.destroy();
    this.closedWith(CLIENT_CLOSE);
    return this.closed;
  }

  terminate(): Promise<CloseInfo> {
    return this.close();
  }

  #connect(url: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const request = http.get(url, { agent: false }, (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          reject(new HttpRefusal(res.statusCode ?? 0));
          return;
        }
        this.#response = res;
        resolve();
        res.setEncoding('utf8');
        let pending = '';
        res.on('data', (chunk: string) => {
          this.lastHeardAt = Date.now();
          pending += chunk;
          for (let end = pending.indexOf('\n\n'); end >= 0; end = pending.indexOf('\n\n')) {
            this.#event(pending.slice(0, end));
            pending = pending.slice(end + 2);
          }
        });
        res.on('close', () => this.closedWith({ code: 1006, reason: 'stream ended without a close event' }));
      });
      request.on('error', (err) => {
        this.lastError = err;
        reject(err);
        this.closedWith({ code: 1006, reason: err.message });
      });
      this.#request = request;
    });
  }

  #event(text: string): void {
    const data = text.split('\n').filter((line) => line.startsWith('data:')).map((line) => line.slice(line.startsWith('data: ') ? 6 : 5));
    if (data.length === 0) {
      this.comments++;
      return;
    }
    const frame = parseServerFrame(data.join('\n'));
    if (frame === null) throw new Error(`${this.label}: server sent an event that is not a frame: ${text}`);
    if (frame.type === 'close') this.closedWith({ code: frame.code, reason: frame.reason });
    else this.received(frame);
  }
}

/** A POST of a JSON body; resolves with the status and the parsed answer (or its text). */
export async function postJson(url: string, body: string, headers: Record<string, string> = {}): Promise<PostAnswer> {
  const response = await fetch(url, { method: 'POST', body, headers: { 'Content-Type': 'application/json', ...headers } });
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch { /* not JSON: the text */ }
  return { status: response.status, body: parsed };
}
