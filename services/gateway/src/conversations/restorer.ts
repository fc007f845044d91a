import type { ConversationStore } from '@chat/archive';
import type { ConversationRestore } from '@chat/broker';
import { ChatError } from '../errors.js';
import type { Logger } from '../logger.js';

/**
 * Puts members-only rooms back from the archive when Redis comes back without
 * them (see ConversationRestore), and keeps everything that would use them
 * waiting meanwhile: after each (re)connection to Redis, until Redis is known to
 * hold its conversations, `ready` is false, frames about rooms wait (up to the
 * broker timeout, then `unavailable`) and /readyz says so. Every gateway checks; several restoring
 * at once only repeat each other's writes (a room is written where it has no record).
 */
export class ConversationRestorer {
  #ready = false;
  #round = 0;
  /** Resolved when `ready` turns true; made anew at every (re)connection. */
  #readied: Promise<void>;
  #markReady: () => void = () => {};

  /** `restored` counts the rooms this node wrote back. */
  constructor(
    private readonly restore: ConversationRestore,
    private readonly store: ConversationStore,
    private readonly log: Logger,
    private readonly restored: { inc(n?: number): void } = { inc() {} },
  ) {
    this.#readied = new Promise((resolve) => (this.#markReady = resolve));
  }

  /** True once Redis is known to hold its conversations since the last (re)connection. */
  get ready(): boolean {
    return this.#ready;
  }

  /**
   * Resolves once `ready`; rejects with `unavailable` after `timeoutMs`. Frames
   * wait here rather than being refused: right after a gateway starts, the check
   * takes a round trip or two.
   */
  whenReady(timeoutMs: number): Promise<void> {
    if (this.#ready) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new ChatError('unavailable', 'conversations are being restored after Redis lost them; retry shortly')), timeoutMs);
      void this.#readied.then(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Redis is (back) up: nothing uses conversations until they are checked, and restored if lost. Retried until done. */
  reconnected(): void {
    if (this.#ready) this.#readied = new Promise((resolve) => (this.#markReady = resolve));
    this.#ready = false;
    const round = ++this.#round;
    void this.#check(round);
  }

  async #check(round: number): Promise<void> {
    for (let delayMs = 250; round === this.#round; delayMs = Math.min(delayMs * 2, 5000)) {
      try {
        if (!(await this.restore.intact())) await this.#restoreAll();
        if (round === this.#round) {
          this.#ready = true;
          this.#markReady();
        }
        return;
      } catch (err) {
        this.log.warn({ err, retryInMs: delayMs }, 'conversations not checked yet; retrying');
        await new Promise((resolve) => setTimeout(resolve, delayMs));
      }
    }
  }

  async #restoreAll(): Promise<void> {
    const rooms = await this.store.rooms();
    this.log.warn({ rooms: rooms.length }, 'Redis lost its conversations: restoring them from the archive');
    let written = 0;
    for (const room of rooms) {
      const record = await this.store.load(room);
      if (record !== undefined && await this.restore.restore(record)) written++;
    }
    await this.restore.markIntact();
    this.restored.inc(written);
    this.log.info({ rooms: rooms.length, written }, 'conversations restored from the archive');
  }
}
