import { parseServerFrame, type MessageFrame, type ServerFrame, type WelcomeFrame } from '@chat/protocol';
import WebSocket from 'ws';

export interface CloseInfo {
  code: number;
  reason: string;
}

type Outgoing = Record<string, unknown>;

/**
 * A raw protocol client for tests: it records every frame and lets a test wait
 * for frames or conditions, failing with a clear message on timeout.
 */
export class TestClient {
  readonly frames: ServerFrame[] = [];
  readonly closed: Promise<CloseInfo>;
  #closeInfo: CloseInfo | undefined;
  #welcome: WelcomeFrame | undefined;
  readonly #checks = new Set<() => void>();
  #refs = 0;
  #lastError: Error | undefined;

  private constructor(readonly ws: WebSocket, readonly label: string) {
    ws.on('message', (data, isBinary) => {
      const frame = isBinary ? null : parseServerFrame(data.toString());
      if (frame === null) throw new Error(`${label}: server sent a frame that is not a JSON object with a type`);
      if (frame.type === 'welcome') this.#welcome = frame;
      this.frames.push(frame);
      for (const check of this.#checks) check();
    });
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.#closeInfo = { code, reason: reason.toString() };
        for (const check of this.#checks) check();
        resolve(this.#closeInfo);
      });
    });
    ws.on('error', (err) => {
      this.#lastError = err; // surfaced through `closed` and wait failures
    });
  }

  /** Opens `url` (…/ws) as `user` and waits for `welcome`. */
  static async connect(url: string, user: string | null, { timeoutMs = 5000, query = '' } = {}): Promise<TestClient> {
    const sep = url.includes('?') ? '&' : '?';
    const full = user === null ? `${url}${query ? sep + query : ''}` : `${url}${sep}user=${encodeURIComponent(user)}${query ? `&${query}` : ''}`;
    const ws = new WebSocket(full);
    const client = new TestClient(ws, user ?? 'anonymous');
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('unexpected-response', (req, res) => {
        // With a listener here, ws leaves ending the refused request to us.
        req.destroy();
        reject(new HttpRefusal(res.statusCode ?? 0));
      });
      ws.once('error', reject);
    });
    await client.until(() => client.#welcome !== undefined, { timeoutMs, what: 'welcome' });
    return client;
  }

  get welcome(): WelcomeFrame {
    if (this.#welcome === undefined) throw new Error('no welcome yet');
    return this.#welcome;
  }

  get closeInfo(): CloseInfo | undefined {
    return this.#closeInfo;
  }

  send(frame: Outgoing | string | Buffer, binary = false): void {
    this.ws.send(typeof frame === 'object' && !Buffer.isBuffer(frame) ? JSON.stringify(frame) : frame, { binary });
  }

  /** Sends `frame` with a fresh `ref` and resolves with the reply that echoes it. */
  async request(frame: Outgoing, timeoutMs = 5000): Promise<ServerFrame> {
    const ref = `${this.label}-${++this.#refs}`;
    this.send({ ...frame, ref });
    return this.waitFor((f) => 'ref' in f && f.ref === ref, { timeoutMs, what: `reply to ${JSON.stringify(frame)}` });
  }

  /** The first frame, received before or after the call, that matches. */
  async waitFor(match: (frame: ServerFrame) => boolean, options: WaitOptions = {}): Promise<ServerFrame> {
    let found: ServerFrame | undefined;
    await this.until(() => (found = this.frames.find(match)) !== undefined, options);
    return found!;
  }

  /** Resolves once `condition` holds; checked on every frame and on close. */
  until(condition: () => boolean, { timeoutMs = 5000, what = 'condition' }: WaitOptions = {}): Promise<void> {
    if (condition()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!condition()) {
          if (this.#closeInfo !== undefined && !condition()) {
            const cause = this.#lastError ? ` after error: ${this.#lastError.message}` : '';
            finish(new Error(`${this.label}: closed (${JSON.stringify(this.#closeInfo)})${cause} while waiting for ${what}`));
          }
          return;
        }
        finish();
      };
      const timer = setTimeout(() => finish(new Error(`${this.label}: timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
      const finish = (err?: Error): void => {
        clearTimeout(timer);
        this.#checks.delete(check);
        if (err) reject(err);
        else resolve();
      };
      this.#checks.add(check);
      if (this.#closeInfo !== undefined) check();
    });
  }

  /** Room messages received, in arrival order (live ones and those inside `joined`). */
  messages(room?: string): MessageFrame[] {
    const out: MessageFrame[] = [];
    for (const f of this.frames) {
      if (f.type === 'message' && (room === undefined || f.room === room)) out.push(f);
      else if (f.type === 'joined' && (room === undefined || f.room === room)) out.push(...f.history);
    }
    return out;
  }

  ofType<T extends ServerFrame['type']>(type: T): Array<Extract<ServerFrame, { type: T }>> {
    return this.frames.filter((f): f is Extract<ServerFrame, { type: T }> => f.type === type);
  }

  close(code = 1000, reason = ''): Promise<CloseInfo> {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(code, reason);
    return this.closed;
  }

  terminate(): Promise<CloseInfo> {
    this.ws.terminate();
    return this.closed;
  }
}

export interface WaitOptions {
  timeoutMs?: number;
  what?: string;
}

/** The upgrade was answered with an HTTP status instead of 101. */
export class HttpRefusal extends Error {
  override readonly name = 'HttpRefusal';
  constructor(readonly status: number) {
    super(`upgrade refused with HTTP ${status}`);
  }
}
