import type { Session } from '../session.js';
import type { Frame } from '../transports/frame-sink.js';

export type { Frame };

/** A room message held back until the stored range before it is out. */
export interface HeldMessage {
  kind: 'message';
  id: string;
  frame: Frame;
}

/** An event about a user (presence, typing): never stored, so never in a range. */
export interface HeldEvent {
  kind: 'event';
  /** A presence change's number (see PresenceChange.seq); none for typing. */
  seq?: number;
  about: string;
  frame: Frame;
}

/** A room's count, told to its members while a join waited (see RoomOccupancy). */
export interface HeldOccupancy {
  kind: 'occupancy';
  count: number;
  /** The last change the count includes. */
  seq: number;
  frame: Frame;
}

export type Held = HeldMessage | HeldEvent | HeldOccupancy;

/**
 * A join waiting for its stored range; live traffic of the room collects here
 * meanwhile and follows the range, so the joiner gets no gap and no duplicate.
 */
export class PendingJoin {
  readonly held: Held[] = [];
  /** Set while the join waits for the room's live stream to reach this id. */
  waitingFor: string | undefined;
  #resume: ((err?: Error) => void) | undefined;

  constructor(readonly session: Session) {}

  /**
   * Resolves when `resume` is called (live delivery reached `id`), or after
   * `timeoutMs`: a copy that has not come by then is not coming (it was stored
   * while this node was not subscribed).
   */
  waitForLive(id: string, timeoutMs: number): Promise<void> {
    this.waitingFor = id;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.resume(), timeoutMs);
      this.#resume = (err) => {
        clearTimeout(timer);
        if (err) reject(err);
        else resolve();
      };
    });
  }

  resume(err?: Error): void {
    this.waitingFor = undefined;
    const resume = this.#resume;
    this.#resume = undefined;
    resume?.(err);
  }
}
