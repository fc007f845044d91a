/**
 * Per-user token revocations (bans), checked at every connect. Each node holds
 * them in memory, kept current by the shared state, so a connect costs no
 * round trip: an upgrade that waits on Redis is done outside the WebSocket
 * server's own loop, and costs ten times more there.
 */
export interface TokenRevocations {
  /** Tokens of `user` issued before `before` (ms) are refused on every node for `ttlMs`. */
  revoke(user: string, before: number, ttlMs: number): Promise<void>;

  /**
   * The time before which the user's tokens are refused, if a revocation is in
   * force. Throws BrokerUnavailableError while this node may have missed one
   * (its shared state is out of reach), so the caller can refuse rather than guess.
   */
  revokedBefore(user: string): number | undefined;

  close(): Promise<void>;
}

/** One user's revocation as every node holds it. */
export interface Revocation {
  before: number;
  /** When it stops being in force (ms). */
  until: number;
}

/** The in-memory table both implementations keep: entries only move forward, and lapse by themselves. */
export class RevocationTable {
  readonly #byUser = new Map<string, Revocation>();

  merge(user: string, revocation: Revocation): void {
    const held = this.#byUser.get(user);
    if (held === undefined) this.#byUser.set(user, { ...revocation });
    else {
      held.before = Math.max(held.before, revocation.before);
      held.until = Math.max(held.until, revocation.until);
    }
  }

  before(user: string, now: number): number | undefined {
    const held = this.#byUser.get(user);
    if (held === undefined) return undefined;
    if (held.until > now) return held.before;
    this.#byUser.delete(user);
    return undefined;
  }
}
