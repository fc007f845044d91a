import type { OfflineNotices } from '@chat/broker';
import { messageFrameHead } from '@chat/protocol';
import type { Logger } from '../logger.js';

/** Rooms one round claims at most. */
const CLAIM = 100;

/**
 * Tells the application, through the `member.unread` webhook, of members of
 * members-only rooms who have unread messages and no connection anywhere (see
 * OfflineNotices). Every gateway runs one: whichever claims a due room first
 * records its events, once for the cluster.
 */
export class OfflineNotifier {
  readonly #timers: NodeJS.Timeout[] = [];
  #running = false;
  #stopped = false;

  /** `sweepMs`: how often due rooms are looked for everywhere, besides wake-ups (WEBHOOK_SWEEP_MS). */
  constructor(private readonly notices: OfflineNotices, private readonly windowMs: number, private readonly sweepMs: number, private readonly log: Logger) {}

  /** Listens for wake-ups (retried until it works), sweeps now and every sweepMs, and claims due rooms a few times per window. */
  start(): void {
    const listen = (): void => {
      this.notices.listen(() => void this.#round()).catch((err: unknown) => {
        this.log.warn({ err }, 'wake-ups for due rooms not subscribed yet; retrying');
        if (!this.#stopped) this.#timers.push(setTimeout(listen, 1000).unref());
      });
    };
    listen();
    const sweep = (): void => {
      this.notices.sweep().catch((err: unknown) => this.log.debug({ err }, 'due rooms not swept this time'));
    };
    sweep();
    this.#timers.push(setInterval(sweep, this.sweepMs).unref());
    this.#timers.push(setInterval(() => void this.#round(), Math.min(1000, Math.max(50, Math.floor(this.windowMs / 4)))).unref());
  }

  stop(): void {
    this.#stopped = true;
    for (const timer of this.#timers) clearInterval(timer);
  }

  async #round(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    try {
      for (let rooms = await this.notices.claimDue(CLAIM); rooms.length > 0; rooms = await this.notices.claimDue(CLAIM)) {
        await Promise.all(rooms.map((room) => this.notices.notify(room, messageFrameHead(room))
          .catch((err: unknown) => this.log.warn({ err, room }, 'could not tell offline members of unread messages; the room\'s next message makes it due again'))));
      }
    } catch (err) {
      this.log.debug({ err }, 'due rooms not claimed this round');
    } finally {
      this.#running = false;
    }
  }
}
