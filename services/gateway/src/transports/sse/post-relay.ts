import type { Broker } from '@chat/broker';
import type { Logger } from '../../logger.js';
import type { Observer } from '../../metrics.js';
import type { LocalStreams } from './local-streams.js';
import { inboxOf } from './local-streams.js';

/** What became of a POST's frames. */
export type PostOutcome =
  | { status: 202; accepted: number; relayed: boolean }
  | { status: 404 }
  /** The holding node could not be reached in time: the frames may or may not have been handled. */
  | { status: 503 };

/** Node-inbox payloads (JSON): a POST's frames for the holder, and its answer for the node that took the POST. */
type RelayMessage =
  | { t: 'post'; id: number; reply: string; session: string; frames: string[] }
  | { t: 'answer'; id: number; accepted: number | null };

interface Waiting {
  settle(outcome: PostOutcome): void;
}

/**
 * Gets a POST's frames to the node that holds the session's stream, so any node
 * can take any POST and no load balancer needs sticky sessions. The frames go
 * over the holder's inbox in one payload, are handled there in order, and the
 * holder answers on the asking node's inbox. No answer within `timeoutMs` is a
 * 503; no node subscribed to the inbox (the holder is gone) is a 404 at once.
 */
export class PostRelay {
  readonly #waiting = new Map<number, Waiting>();
  #nextId = 0;

  constructor(
    private readonly broker: Broker,
    private readonly streams: LocalStreams,
    /** Hands frames to a local stream's session, in order (as WebSocket frames one after another). */
    private readonly apply: (session: string, frames: readonly string[]) => boolean,
    private readonly timeoutMs: number,
    private readonly relaySeconds: Observer,
    private readonly log: Logger,
  ) {}

  /** Receives POSTs relayed by other nodes. Kept across broker reconnects; a failure now is retried on reconnect. */
  start(): void {
    this.broker.subscribeNode(this.streams.inbox).catch((err: unknown) => this.log.warn({ err }, 'node inbox not subscribed yet; retried on reconnect'));
  }

  async deliver(session: string, frames: readonly string[]): Promise<PostOutcome> {
    const inbox = inboxOf(session);
    if (inbox === undefined) return { status: 404 };
    if (inbox === this.streams.inbox) return this.apply(session, frames) ? { status: 202, accepted: frames.length, relayed: false } : { status: 404 };
    return this.#relay(inbox, session, frames);
  }

  /** A payload on this node's inbox. */
  received(payload: Uint8Array): void {
    let message: RelayMessage;
    try {
      message = JSON.parse(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8')) as RelayMessage;
    } catch {
      this.log.warn('ignored a malformed node inbox payload');
      return;
    }
    if (message.t === 'answer') {
      this.#waiting.get(message.id)?.settle(message.accepted === null ? { status: 404 } : { status: 202, accepted: message.accepted, relayed: true });
      return;
    }
    const accepted = this.apply(message.session, message.frames) ? message.frames.length : null;
    const answer: RelayMessage = { t: 'answer', id: message.id, accepted };
    this.broker.sendToNode(message.reply, JSON.stringify(answer))
      .catch((err: unknown) => this.log.warn({ err }, 'could not answer a relayed POST; its sender answers 503'));
  }

  #relay(inbox: string, session: string, frames: readonly string[]): Promise<PostOutcome> {
    const id = ++this.#nextId;
    const startedAt = performance.now();
    return new Promise<PostOutcome>((resolve) => {
      const timer = setTimeout(() => settle({ status: 503 }), this.timeoutMs);
      const settle = (outcome: PostOutcome): void => {
        if (!this.#waiting.delete(id)) return;
        clearTimeout(timer);
        if (outcome.status !== 503) this.relaySeconds.observe((performance.now() - startedAt) / 1000);
        resolve(outcome);
      };
      this.#waiting.set(id, { settle });
      const post: RelayMessage = { t: 'post', id, reply: this.streams.inbox, session, frames: [...frames] };
      this.broker.sendToNode(inbox, JSON.stringify(post)).then(
        (receivers) => { if (receivers === 0) settle({ status: 404 }); },
        () => settle({ status: 503 }),
      );
    });
  }
}
