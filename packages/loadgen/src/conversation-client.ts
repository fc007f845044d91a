import WebSocket from 'ws';
import { CloseCode } from '@chat/protocol';

/**
 * One device of a conversations run: a WebSocket speaking the protocol, every
 * request carrying a `ref` and answered by the frame with that `ref` (or an
 * `error` with it). Room messages and `unread` frames, many per second on a big
 * room, are read with indexOf, never JSON.parse: the load generator's texts and
 * names hold no characters JSON escapes.
 */
export interface ConversationEvents {
  message(room: string, id: string, text: string): void;
  /** Every `unread`, a read's answer (`answer`) included, before the answer resolves its request. */
  unread(room: string, count: number, read: string, last: { id: string; text: string } | undefined, answer: boolean): void;
  /** An `error` no request of ours waits for. */
  stray(raw: string): void;
  closed(code: number): void;
}

/** The frame that answered a request: `raw` as received; `error` when it was an error frame. */
export interface Answer {
  raw: string;
  error: boolean;
}

export class ConversationClient {
  #ws: WebSocket | null = null;
  #refs = 0;
  readonly #pending = new Map<string, (answer: Answer) => void>();

  constructor(private readonly url: string, private readonly user: string, private readonly events: ConversationEvents) {}

  get pending(): number {
    return this.#pending.size;
  }

  get open(): boolean {
    return this.#ws?.readyState === WebSocket.OPEN;
  }

  connect(): Promise<void> {
    const ws = new WebSocket(`${this.url}${this.url.includes('?') ? '&' : '?'}user=${encodeURIComponent(this.user)}`, { perMessageDeflate: false });
    this.#ws = ws;
    return new Promise((resolve, reject) => {
      let welcomed = false;
      ws.on('error', (err) => { if (!welcomed) reject(err); });
      ws.on('close', (code) => {
        if (!welcomed) reject(new Error(`closed (${code}) before welcome`));
        const gone: Answer = { raw: `{"type":"error","code":"closed","message":"connection closed (${code})"}`, error: true };
        for (const answer of this.#pending.values()) answer(gone);
        this.#pending.clear();
        this.events.closed(code);
      });
      ws.on('message', (data: Buffer) => {
        const raw = data.toString();
        if (!welcomed && raw.startsWith('{"type":"welcome"')) {
          welcomed = true;
          resolve();
          return;
        }
        this.#frame(raw);
      });
    });
  }

  /**
   * Sends `frame` (a JSON object's fields after `type`, e.g. `"room":"r","text":"t"`) with a new ref;
   * resolves with its answer. Fails at once when the connection is not open.
   */
  request(type: string, fields: string, prefix: string): Promise<Answer> {
    const ref = `${prefix}${++this.#refs}`;
    if (!this.open) return Promise.resolve({ raw: '{"type":"error","code":"closed","message":"not connected"}', error: true });
    return new Promise((resolve) => {
      this.#pending.set(ref, resolve);
      this.#ws!.send(`{"type":${JSON.stringify(type)}${fields ? `,${fields}` : ''},"ref":"${ref}"}`);
    });
  }

  close(): void {
    this.#ws?.close(CloseCode.NORMAL);
  }

  #frame(raw: string): void {
    if (raw.startsWith('{"type":"message"')) {
      const room = field(raw, ROOM, 0);
      const id = field(raw, ID, 0);
      const text = field(raw, TEXT, 0);
      if (room !== null && id !== null && text !== null) this.events.message(room, id, text);
      return;
    }
    if (raw.startsWith('{"type":"unread"')) return this.#unread(raw);
    if (raw.startsWith('{"type":"presence"') || raw.startsWith('{"type":"occupancy"') || raw.startsWith('{"type":"typing"')) return;
    const ref = field(raw, REF, 0);
    const answer = ref === null ? undefined : this.#pending.get(ref);
    const error = raw.startsWith('{"type":"error"');
    if (answer !== undefined) {
      this.#pending.delete(ref!);
      answer({ raw, error });
    } else if (error) this.events.stray(raw);
  }

  /** `{"type":"unread","room":R,"count":N,"read":ID[,"last":MSG][,"ref":S]}`: a read's answer has no `last`. */
  #unread(raw: string): void {
    const room = field(raw, ROOM, 0);
    const countAt = raw.indexOf(COUNT);
    const read = field(raw, READ, 0);
    if (room === null || countAt < 0 || read === null) return;
    const count = Number(raw.slice(countAt + COUNT.length, raw.indexOf(',', countAt)));
    const lastAt = raw.indexOf(LAST);
    let last: { id: string; text: string } | undefined;
    if (lastAt >= 0) {
      const id = field(raw, ID, lastAt);
      const text = field(raw, TEXT, lastAt);
      if (id !== null && text !== null) last = { id, text };
    }
    const ref = lastAt >= 0 ? null : field(raw, REF, 0);
    const answer = ref === null ? undefined : this.#pending.get(ref);
    this.events.unread(room, count, read, last, answer !== undefined);
    if (answer !== undefined) {
      this.#pending.delete(ref!);
      answer({ raw, error: false });
    }
  }
}

const ROOM = '"room":"';
const ID = '"id":"';
const TEXT = '"text":"';
const READ = '"read":"';
const REF = '"ref":"';
const COUNT = '"count":';
const LAST = ',"last":{';

function field(raw: string, name: string, from: number): string | null {
  const start = raw.indexOf(name, from);
  if (start < 0) return null;
  const at = start + name.length;
  const end = raw.indexOf('"', at);
  return end < 0 ? null : raw.slice(at, end);
}
