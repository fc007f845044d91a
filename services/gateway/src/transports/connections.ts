import { CloseCode, encodeWelcome, parseClientFrame, type FrameLimits } from '@chat/protocol';
import type { CommandHandler } from '../commands.js';
import type { Config } from '../config.js';
import type { ConnectionLimits } from '../connection-limits.js';
import { ChatError } from '../errors.js';
import { closeCodeLabel, type Metrics } from '../metrics.js';
import type { RoomRegistry } from '../rooms/registry.js';
import type { Session } from '../session.js';
import type { UserRegistry } from '../users.js';
import type { FrameSink } from './frame-sink.js';

/** Session.serialize key of frame batches; room names never start with a NUL. */
const BATCHES = '\u0000batches';
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export interface ConnectionContext {
  config: Config;
  metrics: Metrics;
  commands: CommandHandler;
  rooms: RoomRegistry;
  users: UserRegistry;
  sessions: Set<Session>;
  limits: ConnectionLimits;
}

/**
 * A connection's life once admitted, whatever its transport: it counts, gets
 * `welcome`, has its frames parsed, rate-limited and handled in order, and
 * leaves every room when it closes. Transports call these three and nothing else.
 */
export class Connections {
  readonly #frameLimits: FrameLimits;

  constructor(private readonly ctx: ConnectionContext) {
    this.#frameLimits = { maxFrameBytes: ctx.config.maxFrameBytes, maxTextLength: ctx.config.maxTextLength };
  }

  /** The transport is up. `stream`: an event stream's session id, which its `welcome` tells the client. */
  opened(session: Session, sink: FrameSink, stream?: string): void {
    const { config, metrics, users, sessions } = this.ctx;
    session.attach(sink);
    sessions.add(session);
    this.ctx.limits.add(session.user, session.address);
    metrics.connectionsOpened.incLabel(session.transport);
    const { expiresAt } = session.identity;
    if (expiresAt !== undefined) {
      session.expiryTimer = setTimeout(() => session.end(CloseCode.POLICY_VIOLATION, 'token expired'), Math.max(0, expiresAt - Date.now()));
      session.expiryTimer.unref();
    }
    // Welcome once direct messages can reach this connection.
    void users.add(session).then(() => session.welcome(encodeWelcome(session.user, session.id, config.nodeId, stream, session.identity.mod)));
  }

  /** One client frame as it arrived; frames of one connection are handled in the order they arrive here. */
  received(session: Session, data: ArrayBuffer | string, isBinary: boolean): void {
    const { metrics, commands } = this.ctx;
    try {
      const now = Date.now();
      const parsed = parseClientFrame(data, this.#frameLimits, isBinary);
      metrics.framesReceived.incLabels(parsed.ok ? parsed.frame.type : 'invalid', session.transport);
      if (!parsed.ok && parsed.error.close !== undefined) {
        metrics.framesRejected.incLabel(parsed.error.code);
        session.end(parsed.error.close, parsed.error.message);
        return;
      }
      const ref = parsed.ok ? parsed.frame.ref : parsed.error.ref;
      if (!session.takeToken(now)) {
        metrics.rateLimited.inc();
        if (session.strike(now)) session.whenWelcomed(() => commands.reject(session, new ChatError('rate_limited', 'too many frames; slow down'), ref));
        else session.end(CloseCode.POLICY_VIOLATION, 'rate limit exceeded repeatedly');
        return;
      }
      session.whenWelcomed(() => {
        if (parsed.ok) commands.handle(session, parsed.frame);
        else commands.reject(session, new ChatError(parsed.error.code, parsed.error.message), ref);
      });
    } catch (err) {
      // Never let an exception escape into uWS.
      commands.reject(session, err, undefined);
    }
  }

  /**
   * Frames that came together (one POST), handled one after another as frames
   * of a WebSocket are: uWS runs the microtasks a frame starts before it reads
   * the next (a join counts before the send behind it), so each waits for the
   * event loop's next turn. A later batch of the session waits for this one.
   */
  receivedBatch(session: Session, frames: readonly string[]): void {
    void session.serialize(BATCHES, async () => {
      for (let i = 0; i < frames.length && session.open; i++) {
        if (i > 0) await nextTurn();
        this.received(session, frames[i]!, false);
      }
    });
  }

  /** The transport is gone (its close handler ran, or the stream was aborted or ended). */
  closed(session: Session, code: number): void {
    const { metrics, rooms, users, sessions } = this.ctx;
    if (!sessions.delete(session)) return;
    session.detach();
    clearTimeout(session.expiryTimer);
    this.ctx.limits.remove(session.user, session.address);
    rooms.leaveAll(session);
    users.remove(session);
    metrics.connectionsClosed.incLabel(closeCodeLabel(code));
    session.log.debug({ code, transport: session.transport }, 'connection closed');
  }
}
