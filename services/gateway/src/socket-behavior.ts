import type { TokenRevocations } from '@chat/broker';
import { CloseCode, encodeWelcome, parseClientFrame, type FrameLimits } from '@chat/protocol';
import type { HttpResponse, WebSocketBehavior } from 'uWebSockets.js';
import { revokedBy, type Authenticator } from './auth.js';
import { clientAddress, normalizeAddress } from './client-address.js';
import type { ConnectionLimits } from './connection-limits.js';
import type { CommandHandler } from './commands.js';
import type { Config } from './config.js';
import { ChatError } from './errors.js';
import { bearerToken, watchAbort } from './http/request.js';
import type { Logger } from './logger.js';
import { closeCodeLabel, type Metrics } from './metrics.js';
import type { RoomRegistry } from './rooms/registry.js';
import { Session, type SocketData } from './session.js';
import { hardBackpressureLimit, type SlowConsumerGuard } from './slow-consumers.js';
import type { UserRegistry } from './users.js';

/**
 * uWS closes a connection whose frame exceeds its own limit without a close
 * frame (the client sees 1006). Frames up to this size are read so the
 * gateway can answer an oversize frame with the protocol's 1009.
 */
const READ_LIMIT_BYTES = 2 * 1024 * 1024; // also what one stalled partial frame can pin, until the idle timeout

export interface SocketContext {
  config: Config;
  log: Logger;
  metrics: Metrics;
  commands: CommandHandler;
  rooms: RoomRegistry;
  users: UserRegistry;
  sessions: Set<Session>;
  /** Told of every write to a socket. */
  slowConsumers: Pick<SlowConsumerGuard, 'wrote'>;
  /** False once shutdown began. */
  accepting(): boolean;
  newConnectionId(): string;
  authenticator: Authenticator;
  limits: ConnectionLimits;
  /** Tokens issued before a user's revocation are refused (server API: disconnect with revokeTokens). */
  revocations: Pick<TokenRevocations, 'revokedBefore'>;
}

function refuse(res: HttpResponse, status: string, message: string): void {
  res.writeStatus(status).writeHeader('Content-Type', 'text/plain').end(message);
}

type Identified = { ok: true; identity: Session['identity'] } | { ok: false; status: string; reason: string };

/** The identity, checked against the user's token revocation (held in memory: no round trip per upgrade). */
async function identify(ctx: SocketContext, token: string | undefined, user: string | undefined): Promise<Identified> {
  const result = await ctx.authenticator.identify({ token, user });
  if (!result.ok) return { ok: false, status: '401 Unauthorized', reason: result.reason };
  let revokedBefore: number | undefined;
  try {
    revokedBefore = ctx.revocations.revokedBefore(result.identity.user);
  } catch {
    return { ok: false, status: '503 Service Unavailable', reason: 'cannot check the token now; retry later' };
  }
  if (revokedBy(result.identity, revokedBefore)) return { ok: false, status: '401 Unauthorized', reason: 'token revoked' };
  return result;
}

export function createSocketBehavior(ctx: SocketContext): WebSocketBehavior<SocketData> {
  const { config, log, metrics, commands, rooms, users, sessions } = ctx;
  const limits: FrameLimits = { maxFrameBytes: config.maxFrameBytes, maxTextLength: config.maxTextLength };

  return {
    maxPayloadLength: Math.max(READ_LIMIT_BYTES, config.maxFrameBytes + 1),
    // SlowConsumerGuard closes a socket over SEND_BUFFER_BYTES with 1013. This
    // is the last resort for a burst that outruns it: uWS cuts the socket rather than
    // drop a message, so a client never sees a gap.
    maxBackpressure: hardBackpressureLimit(config.sendBufferBytes),
    closeOnBackpressureLimit: true as unknown as number,
    idleTimeout: config.idleTimeoutSec,
    sendPingsAutomatically: true,

    upgrade(res, req, context) {
      // Everything from `req` now: it is gone once this handler returns.
      const key = req.getHeader('sec-websocket-key');
      const protocol = req.getHeader('sec-websocket-protocol');
      const extensions = req.getHeader('sec-websocket-extensions');
      const origin = req.getHeader('origin');
      const forwardedFor = req.getHeader('x-forwarded-for');
      const token = req.getQuery('token') || bearerToken(req.getHeader('authorization'));
      const user = req.getQuery('user');
      const peer = normalizeAddress(Buffer.from(res.getRemoteAddressAsText()).toString());
      if (!ctx.accepting()) return refuse(res, '503 Service Unavailable', 'shutting down');
      if (config.allowedOrigins !== null && origin !== '' && !config.allowedOrigins.includes(origin)) {
        return refuse(res, '403 Forbidden', 'origin not allowed');
      }
      const aborted = watchAbort(res);
      void identify(ctx, token, user).then((result) => {
        if (aborted.value) return;
        if (!result.ok) return res.cork(() => refuse(res, result.status, result.reason));
        const address = clientAddress(peer, forwardedFor, config.trustedProxies);
        const refusal = ctx.limits.refusal(result.identity.user, address);
        if (refusal !== undefined) return res.cork(() => refuse(res, '429 Too Many Requests', refusal));
        const session = new Session(ctx.newConnectionId(), result.identity, address, config, Date.now(), log, ctx.slowConsumers);
        // Not inside res.cork(): in this uWS build, cork() after an upgrade made outside the
        // upgrade handler can shut the new socket down a millisecond after `open`
        // (uNetworking/uWebSockets#1929). Seen here as clients cut 1006 before `welcome`.
        res.upgrade<SocketData>({ session }, key, protocol, extensions, context);
      });
    },

    open(ws) {
      const { session } = ws.getUserData();
      session.attach(ws);
      sessions.add(session);
      ctx.limits.add(session.user, session.address);
      metrics.connectionsOpened.inc();
      const { expiresAt } = session.identity;
      if (expiresAt !== undefined) {
        session.expiryTimer = setTimeout(() => session.end(CloseCode.POLICY_VIOLATION, 'token expired'), Math.max(0, expiresAt - Date.now()));
        session.expiryTimer.unref();
      }
      // Welcome once direct messages can reach this connection.
      void users.add(session).then(() => session.welcome(encodeWelcome(session.user, session.id, config.nodeId)));
    },

    message(ws, data, isBinary) {
      const { session } = ws.getUserData();
      try {
        const now = Date.now();
        const parsed = parseClientFrame(data, limits, isBinary);
        metrics.framesReceived.incLabel(parsed.ok ? parsed.frame.type : 'invalid');
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
    },

    close(ws, code) {
      const { session } = ws.getUserData();
      session.detach();
      clearTimeout(session.expiryTimer);
      sessions.delete(session);
      ctx.limits.remove(session.user, session.address);
      for (const room of session.rooms) rooms.leave(session, room);
      users.remove(session);
      metrics.connectionsClosed.incLabel(closeCodeLabel(code));
      session.log.debug({ code }, 'connection closed');
    },
  };
}
