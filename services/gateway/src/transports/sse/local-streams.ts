import { randomBytes } from 'node:crypto';
import type { Session } from '../../session.js';
import type { EventStreamSink } from './stream-sink.js';

/** A session id: `<inbox>.<secret>`; the inbox (hex) names the node, the secret is 128 random bits (base64url: no dot). */
const SESSION_ID = /^([0-9a-f]{16})\.[A-Za-z0-9_-]{22}$/;

export interface LocalStream {
  session: Session;
  sink: EventStreamSink;
}

/**
 * The event streams this node holds, by session id, and their heartbeats.
 * A session id says which node holds it (its inbox), so a POST that lands on
 * any node can be relayed without asking anyone; the rest is a secret known
 * only to the stream's client (never logged: logs name the connection id).
 */
export class LocalStreams {
  /** This node's inbox: unique per process, so a restarted node never answers for its predecessor's streams. */
  readonly inbox = randomBytes(8).toString('hex');
  readonly #streams = new Map<string, LocalStream>();
  #timer: NodeJS.Timeout | undefined;
  /** Streams are looked at this often; one silent for `#silenceMs` gets a comment, so none is silent past the heartbeat. */
  readonly #checkMs: number;
  readonly #silenceMs: number;

  /** `heartbeatMs`: the longest a stream may go without a byte (SSE_HEARTBEAT_MS). */
  constructor(heartbeatMs: number) {
    this.#checkMs = Math.max(50, Math.floor(heartbeatMs / 3));
    this.#silenceMs = heartbeatMs - this.#checkMs;
  }

  get size(): number {
    return this.#streams.size;
  }

  newId(): string {
    return `${this.inbox}.${randomBytes(16).toString('base64url')}`;
  }

  add(id: string, stream: LocalStream): void {
    this.#streams.set(id, stream);
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => this.#heartbeat(Date.now()), this.#checkMs);
    this.#timer.unref();
  }

  remove(id: string): void {
    this.#streams.delete(id);
    if (this.#streams.size > 0) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  get(id: string): LocalStream | undefined {
    return this.#streams.get(id);
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #heartbeat(now: number): void {
    for (const { sink } of this.#streams.values()) sink.heartbeat(now, this.#silenceMs);
  }
}

/** The inbox of the node holding session `id`, or undefined when `id` is not a session id at all. */
export function inboxOf(id: string): string | undefined {
  return SESSION_ID.exec(id)?.[1];
}
