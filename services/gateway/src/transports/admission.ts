import type { TokenRevocations } from '@chat/broker';
import type { HttpResponse } from 'uWebSockets.js';
import { revokedBy, type Authenticator, type Identity } from '../auth.js';
import { clientAddress, normalizeAddress } from '../client-address.js';
import type { Config } from '../config.js';
import type { ConnectionLimits } from '../connection-limits.js';
import type { Logger } from '../logger.js';
import { Session } from '../session.js';
import type { TransportName } from './frame-sink.js';

/** What an opening connection presents, read off its request before the handler returns (uWS frees it then). */
export interface Knock {
  token: string | undefined;
  user: string | undefined;
  /** Development identities only: the `?mod=` patterns. */
  mod?: string | undefined;
  origin: string;
  /** The TCP peer's address (see peerAddress). */
  peer: string;
  forwardedFor: string;
}

export interface AdmissionContext {
  config: Config;
  log: Logger;
  authenticator: Authenticator;
  limits: ConnectionLimits;
  /** Tokens issued before a user's revocation are refused (server API: disconnect with revokeTokens). */
  revocations: Pick<TokenRevocations, 'revokedBefore'>;
  /** Told of every write to a connection. */
  slowConsumers: { wrote(bytes: number): void };
  /** False once shutdown began. */
  accepting(): boolean;
  newConnectionId(): string;
}

export type Admission = { ok: true; session: Session } | { ok: false; status: string; reason: string };

/** The TCP peer's address, copied out of uWS's buffer (valid only during the handler). */
export function peerAddress(res: HttpResponse): string {
  return normalizeAddress(Buffer.from(res.getRemoteAddressAsText()).toString());
}

/** Refusals known before any I/O: shutting down, or an origin the deployment does not allow. */
export function refusedAtOnce(ctx: AdmissionContext, origin: string): Admission | undefined {
  if (!ctx.accepting()) return { ok: false, status: '503 Service Unavailable', reason: 'shutting down' };
  const allowed = ctx.config.allowedOrigins;
  if (allowed !== null && origin !== '' && !allowed.includes(origin)) return { ok: false, status: '403 Forbidden', reason: 'origin not allowed' };
  return undefined;
}

/**
 * Who may open a connection, the same for a WebSocket upgrade and an event
 * stream: a valid identity whose token is not revoked, within the per-user and
 * per-address limits. Admitted, it is a Session not yet attached to a transport.
 */
export async function admit(ctx: AdmissionContext, knock: Knock, transport: TransportName): Promise<Admission> {
  const early = refusedAtOnce(ctx, knock.origin);
  if (early !== undefined) return early;
  const identified = await identify(ctx, knock);
  if (!identified.ok) return identified;
  const { config } = ctx;
  const address = clientAddress(knock.peer, knock.forwardedFor, config.trustedProxies);
  const refusal = ctx.limits.refusal(identified.identity.user, address);
  if (refusal !== undefined) return { ok: false, status: '429 Too Many Requests', reason: refusal };
  return { ok: true, session: new Session(ctx.newConnectionId(), identified.identity, address, config, Date.now(), ctx.log, ctx.slowConsumers, transport) };
}

type Identified = { ok: true; identity: Identity } | { ok: false; status: string; reason: string };

/** The identity, checked against the user's token revocation (held in memory: no round trip per connection). */
async function identify(ctx: AdmissionContext, { token, user, mod }: Knock): Promise<Identified> {
  const result = await ctx.authenticator.identify({ token, user, mod });
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
