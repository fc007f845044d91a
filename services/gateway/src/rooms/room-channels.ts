import type { Broker } from '@chat/broker';
import type { Logger } from '../logger.js';

interface Wanted {
  holders: number;
  live: Promise<void>;
  failed: boolean;
}

/**
 * The broker's room subscriptions, shared by what needs a room's traffic here:
 * local members (RoomRegistry) and the unread counts of members who did not
 * join (UnreadRelay). A room is subscribed while anyone holds it.
 */
export class RoomChannels {
  readonly #wanted = new Map<string, Wanted>();

  constructor(private readonly broker: Broker, private readonly log: Logger) {}

  /** Resolves once the room's messages reach the broker's listener; release it once, even after a failure. */
  hold(room: string): Promise<void> {
    const wanted = this.#wanted.get(room);
    if (wanted === undefined) {
      const fresh: Wanted = { holders: 1, live: Promise.resolve(), failed: false };
      this.#wanted.set(room, fresh);
      return this.#subscribe(room, fresh);
    }
    wanted.holders++;
    return wanted.failed ? this.#subscribe(room, wanted) : wanted.live;
  }

  release(room: string): void {
    const wanted = this.#wanted.get(room);
    if (wanted === undefined || --wanted.holders > 0) return;
    this.#wanted.delete(room);
    this.broker.unsubscribeRoom(room).catch((err: unknown) => this.log.warn({ err, room }, 'unsubscribe failed'));
  }

  #subscribe(room: string, wanted: Wanted): Promise<void> {
    wanted.failed = false;
    wanted.live = this.broker.subscribeRoom(room);
    wanted.live.catch(() => {
      wanted.failed = true; // the next holder tries again
    });
    return wanted.live;
  }
}
