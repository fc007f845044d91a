import { encodeUserCommand } from '../user-commands.js';
import { apiError, jsonObject, type ApiReply } from './http.js';
import { name } from './params.js';
import type { ApiDeps, ApiInput, ApiRoute } from './routes.js';

/** A WebSocket close reason is at most 123 bytes. */
const MAX_REASON_BYTES = 123;
const DEFAULT_REASON = 'disconnected by the application';

/** Users: presence; disconnect everywhere (and refuse older tokens). */
export function userRoutes(deps: ApiDeps): ApiRoute[] {
  return [
    { method: 'get', path: '/api/users/:user', handle: (input) => presence(deps, input) },
    { method: 'post', path: '/api/users/:user/disconnect', body: true, handle: (input) => disconnect(deps, input) },
  ];
}

async function presence({ directory }: ApiDeps, { params }: ApiInput): Promise<ApiReply> {
  const user = name(params[0]!, 'user');
  if (!user.ok) return user.reply;
  return { status: 200, body: { user: user.value, ...(await directory.userPresence(user.value)) } };
}

/**
 * Body (optional) {"reason"?: string, "revokeTokens"?: boolean}: every connection
 * of the user closes with 4000 and the reason; with revokeTokens, tokens issued
 * before now are refused at connect for TOKEN_REVOCATION_TTL_S.
 */
async function disconnect({ broker, revocations, config }: ApiDeps, { params, body }: ApiInput): Promise<ApiReply> {
  const user = name(params[0]!, 'user');
  if (!user.ok) return user.reply;
  const input = jsonObject(body, true);
  if (!input.ok) return input.reply;
  const { reason = DEFAULT_REASON, revokeTokens = false } = input.value;
  if (typeof reason !== 'string' || Buffer.byteLength(reason) > MAX_REASON_BYTES) {
    return apiError(400, 'bad_request', `"reason" must be a string of at most ${MAX_REASON_BYTES} bytes`);
  }
  if (typeof revokeTokens !== 'boolean') return apiError(400, 'bad_request', '"revokeTokens" must be true or false');
  const revokedBefore = revokeTokens ? Date.now() : undefined;
  // Revoked first: a connection that reconnects at once is refused.
  if (revokedBefore !== undefined) await revocations.revoke(user.value, revokedBefore, config.tokenRevocationTtlMs);
  const nodes = await broker.sendUserCommand(user.value, encodeUserCommand({ op: 'disconnect', reason }));
  return { status: 200, body: { user: user.value, nodes, revokedBefore: revokedBefore ?? null } };
}
