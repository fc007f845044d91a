import { createPublicKey, type KeyObject } from 'node:crypto';
import { NAME_PATTERN } from '@chat/protocol';
import { errors, jwtVerify } from 'jose';

/** Who a connection is, and what its token lets it use. */
export interface Identity {
  user: string;
  /** Room patterns from the token's `rooms` claim; null: every room (development identity, or no claim). */
  rooms: readonly string[] | null;
  /** User patterns from the token's `dm` claim: whom this user may send direct messages to; null: anyone. */
  dm: readonly string[] | null;
  /** Room patterns from the token's `mod` claim: rooms where this user deletes others' messages; empty: none. */
  mod: readonly string[];
  /** When the token expires (ms since the epoch), if it does. */
  expiresAt?: number;
  /** When the token was issued (`iat`, ms since the epoch); absent for development identities and tokens without it. */
  issuedAt?: number;
}

export interface AuthSettings {
  jwtSecret: string | undefined;
  jwtPublicKey: string | undefined;
  jwtIssuer: string | undefined;
  jwtAudience: string | undefined;
  /** Accept `?user=` identities. */
  devIdentity: boolean;
}

export type AuthResult = { ok: true; identity: Identity } | { ok: false; reason: string };

/**
 * Turns what an upgrade request carries into an identity: a JWT (`?token=` or
 * `Authorization: Bearer`) checked for signature, algorithm, `exp` and `nbf`,
 * or — only when development identities are on — `?user=`.
 */
export class Authenticator {
  readonly #key: Uint8Array | KeyObject | undefined;
  readonly #algorithms: string[];

  constructor(private readonly settings: AuthSettings) {
    if (settings.jwtPublicKey !== undefined) {
      const key = createPublicKey(settings.jwtPublicKey);
      this.#key = key;
      // The algorithm follows from the key, never from the token: no `none`, no RS/HS confusion.
      this.#algorithms = key.asymmetricKeyType === 'ec' ? ['ES256'] : ['RS256'];
    } else if (settings.jwtSecret !== undefined) {
      this.#key = new TextEncoder().encode(settings.jwtSecret);
      this.#algorithms = ['HS256'];
    } else {
      this.#algorithms = [];
    }
  }

  /** `mod`: with a development identity, the `?mod=` patterns (comma-separated), as a token's `mod` claim. */
  async identify(request: { token: string | undefined; user: string | undefined; mod?: string | undefined }): Promise<AuthResult> {
    if (request.token) return this.#verify(request.token);
    if (request.user !== undefined && request.user !== '' && this.settings.devIdentity) {
      const mod = request.mod === undefined || request.mod === '' ? [] : request.mod.split(',');
      return NAME_PATTERN.test(request.user)
        ? { ok: true, identity: { user: request.user, rooms: null, dm: null, mod } }
        : { ok: false, reason: 'malformed ?user' };
    }
    return { ok: false, reason: this.settings.devIdentity ? 'identity required: ?token=<JWT> or ?user=<id>' : 'token required' };
  }

  async #verify(token: string): Promise<AuthResult> {
    if (this.#key === undefined) return { ok: false, reason: 'tokens are not configured on this gateway' };
    try {
      const { payload } = await jwtVerify(token, this.#key, {
        algorithms: this.#algorithms,
        ...(this.settings.jwtIssuer !== undefined && { issuer: this.settings.jwtIssuer }),
        ...(this.settings.jwtAudience !== undefined && { audience: this.settings.jwtAudience }),
      });
      if (typeof payload.sub !== 'string' || !NAME_PATTERN.test(payload.sub)) return { ok: false, reason: 'token sub is not a valid user id' };
      const { rooms, dm, mod } = payload;
      if (!isPatternList(rooms) || !isPatternList(dm) || !isPatternList(mod)) return { ok: false, reason: 'token rooms, dm and mod claims must be lists of strings' };
      return {
        ok: true,
        identity: {
          user: payload.sub,
          rooms: rooms ?? null,
          dm: dm ?? null,
          mod: mod ?? [],
          ...(payload.exp !== undefined && { expiresAt: payload.exp * 1000 }),
          ...(payload.iat !== undefined && { issuedAt: payload.iat * 1000 }),
        },
      };
    } catch (err) {
      return { ok: false, reason: err instanceof errors.JOSEError ? `invalid token (${err.code})` : 'invalid token' };
    }
  }
}

/**
 * Whether a revocation refuses this identity: tokens issued before `revokedBefore`
 * are refused, and so is an identity that cannot show when it was issued.
 */
export function revokedBy(identity: Identity, revokedBefore: number | undefined): boolean {
  return revokedBefore !== undefined && (identity.issuedAt === undefined || identity.issuedAt < revokedBefore);
}

/** Whether a `rooms` or `dm` claim admits `name`: exact names, or prefixes ending in `*`; null admits all. */
export function allowedBy(patterns: readonly string[] | null, name: string): boolean {
  if (patterns === null) return true;
  return patterns.some((p) => (p.endsWith('*') ? name.startsWith(p.slice(0, -1)) : p === name));
}

function isPatternList(value: unknown): value is string[] | undefined {
  return value === undefined || (Array.isArray(value) && value.every((v) => typeof v === 'string'));
}
