import { CloseCode } from '@chat/protocol';
import type { Session } from './session.js';

type Socket = Pick<Session, 'log' | 'bufferedAmount' | 'end'>;

/** uWS cuts a socket (1006, no close frame) past this many times SEND_BUFFER_BYTES. */
const HARD_LIMIT_FACTOR = 16;
/** A sweep follows writes within this long: cheap (one native call per socket), so a flooded buffer overshoots little. */
const SWEEP_DELAY_MS = 100;

export function hardBackpressureLimit(sendBufferBytes: number): number {
  return sendBufferBytes * HARD_LIMIT_FACTOR;
}

/**
 * Closes sockets whose send buffer stays over SEND_BUFFER_BYTES with 1013, so
 * their clients reconnect and resume with `since` before they cost memory.
 *
 * Buffers only grow when something is written, so a sweep follows writes (fan-out
 * the relay reports, replies to frames the socket layer reports) within
 * SWEEP_DELAY_MS, and an idle gateway runs none: it costs nothing per connection
 * while nothing happens. A delayed sweep alone is not enough: after a stall the
 * relay can fan out a burst in one tick and push a buffer past uWS's hard limit,
 * which cuts the socket without a close frame. So a sweep also runs inline once
 * the bytes fanned out could have carried a socket halfway from the soft to the hard limit.
 */
export class SlowConsumerGuard {
  readonly #headroomBytes: number;
  #fannedOutBytes = 0;
  #sweeping = false;
  #timer: NodeJS.Timeout | undefined;
  #stopped = true;

  constructor(
    private readonly sessions: ReadonlySet<Socket>,
    private readonly limitBytes: number,
    private readonly closes: { inc(): void },
  ) {
    this.#headroomBytes = (hardBackpressureLimit(limitBytes) - limitBytes) / 2;
  }

  start(): void {
    this.#stopped = false;
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Something was written (a reply to a client's frame): a sweep follows soon. */
  wrote(): void {
    if (this.#timer !== undefined || this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.sweep();
    }, SWEEP_DELAY_MS);
    this.#timer.unref();
  }

  /** Bytes just sent to every member of a room or every socket of a user. */
  fannedOut(bytes: number): void {
    this.#fannedOutBytes += bytes;
    if (this.#fannedOutBytes >= this.#headroomBytes) this.sweep();
    else this.wrote();
  }

  sweep(): void {
    if (this.#sweeping) return; // closing a socket can publish presence, which reports here again
    this.#sweeping = true;
    this.#fannedOutBytes = 0;
    try {
      for (const session of this.sessions) {
        if (session.bufferedAmount() <= this.limitBytes) continue;
        this.closes.inc();
        session.log.warn('closing slow consumer');
        session.end(CloseCode.TRY_AGAIN_LATER, 'send buffer overflow: client too slow');
      }
    } finally {
      this.#sweeping = false;
    }
  }
}
