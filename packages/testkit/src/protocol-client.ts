import type { MessageFrame, ServerFrame, WelcomeFrame } from '@chat/protocol';

export interface CloseInfo {
  code: number;
  reason: string;
}

export type Outgoing = Record<string, unknown>;

/**
 * A raw protocol client for tests, whatever its transport: it records every
 * frame and lets a test wait for frames or conditions, failing with a clear
 * message on timeout. Transports feed it `received` and `closedWith`.
 */
export abstract class ProtocolClient {
  readonly frames: ServerFrame[] = [];
  readonly closed: Promise<CloseInfo>;
  #closeInfo: CloseInfo | undefined;
  #welcome: WelcomeFrame | undefined;
  readonly #checks = new Set<() => void>();
  #refs = 0;
  #resolveClosed!: (info: CloseInfo) => void;
  protected lastError: Error | undefined;

  protected constructor(readonly label: string) {
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
  }

  abstract send(frame: Outgoing | string | Buffer, binary?: boolean): void;
  abstract close(code?: number, reason?: string): Promise<CloseInfo>;
  abstract terminate(): Promise<CloseInfo>;

  protected received(frame: ServerFrame): void {
    if (frame.type === 'welcome') this.#welcome = frame;
    this.frames.push(frame);
    for (const check of this.#checks) check();
  }

  protected closedWith(info: CloseInfo): void {
    if (this.#closeInfo !== undefined) return;
    this.#closeInfo = info;
    for (const check of this.#checks) check();
    this.#resolveClosed(info);
  }

  protected waitForWelcome(timeoutMs: number): Promise<void> {
    return this.until(() => this.#welcome !== undefined, { timeoutMs, what: 'welcome' });
  }

  get welcome(): WelcomeFrame {
    if (this.#welcome === undefined) throw new Error('no welcome yet');
    return this.#welcome;
  }

  get closeInfo(): CloseInfo | undefined {
    return this.#closeInfo;
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
            const cause = this.lastError ? ` after error: ${this.lastError.message}` : '';
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
}

export interface WaitOptions {
  timeoutMs?: number;
  what?: string;
}
