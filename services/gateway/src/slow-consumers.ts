import { CloseCode } from '@chat/protocol';
import type { Session } from './session.js';

type Socket = Pick<Session, 'log' | 'bufferedAmount' | 'end'>;

/** uWS cuts a socket (1006, no close frame) past this many times SEND_BUFFER_BYTES. */
const HARD_LIMIT_FACTOR = 16;
/** A sweep follows any write within this long (one native call per socket: cheap, but not for nothing at 100,000 sockets). */
const SWEEP_DELAY_MS = 1000;

export function hardBackpressureLimit(sendBufferBytes: number): number {
  return sendBufferBytes * HARD_LIMIT_FACTOR;
}

/**
 * Closes sockets whose send buffer stays over SEND_BUFFER_BYTES with 1013, so
 * their clients reconnect and resume with `since` before they cost memory.
 *
 * Buffers only grow by what is written, so sweeps follow writes, never a clock:
 * at once when the bytes written since the last sweep (everything a socket could
 * have received since) reach SEND_BUFFER_BYTES, so no socket gets past twice the
 * limit, far below uWS's hard limit, which cuts a socket without a close frame;
 * and within SWEEP_DELAY_MS of any write, for what trickles in below that. An
 * idle gateway runs none, and a busy one at most one a second plus one per
 * SEND_BUFFER_BYTES written, whatever its number of sockets.
 */
export class SlowConsumerGuard {
  #writtenBytes = 0;
  #sweeping = false;
  #timer: NodeJS.Timeout | undefined;
  #stopped = true;

  constructor(
    private readonly sessions: ReadonlySet<Socket>,
    private readonly limitBytes: number,
    private readonly closes: { inc(): void },
  ) {}

  start(): void {
    this.#stopped = false;
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** `bytes` were written to one socket, or sent to every member of a room or every socket of a user. */
  wrote(bytes: number): void {
    this.#writtenBytes += bytes;
    if (this.#writtenBytes >= this.limitBytes) {
      this.sweep();
    } else if (this.#timer === undefined && !this.#stopped) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.sweep();
      }, SWEEP_DELAY_MS);
      this.#timer.unref();
    }
  }

  sweep(): void {
    if (this.#sweeping) return; // closing a socket can publish presence, which reports here again
    this.#sweeping = true;
    this.#writtenBytes = 0;
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
