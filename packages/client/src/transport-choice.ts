import type { TransportName } from './transport.js';

/** The Web Storage subset used to remember a fallback across page loads (`localStorage`). */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/** `localStorage` where there is one and it may be used (not in Node; it throws in some sandboxed frames). */
export function defaultStorage(): StorageLike | null {
  try {
    const storage = (globalThis as { localStorage?: StorageLike }).localStorage;
    return storage ?? null;
  } catch {
    return null;
  }
}

/**
 * Which transports a connection attempt tries, in order, and the fallback
 * remembered: when a WebSocket failed to reach `welcome` and another
 * transport then did, the network in between breaks WebSockets (a proxy that
 * stalls or refuses upgrades), so for `memoryMs` attempts start with the
 * others, and WebSocket comes last. Only that sequence is remembered: when
 * every transport fails, the gateway is down, and nothing is learnt about
 * WebSockets. Kept in memory, and in `storage` (per service host) so that a
 * reloaded page does not wait out the WebSocket again.
 */
export class TransportChoice {
  #brokenUntil = 0;

  constructor(
    readonly transports: readonly TransportName[],
    private readonly memoryMs: number,
    private readonly storage: StorageLike | null,
    private readonly storageKey: string,
  ) {}

  /** When the remembered fallback ends (ms since the epoch); 0 or past: none. */
  get webSocketBrokenUntil(): number {
    let until = this.#brokenUntil;
    try {
      const stored = Number(this.storage?.getItem(this.storageKey) ?? 0);
      if (Number.isFinite(stored) && stored > until) until = stored;
    } catch { /* storage unavailable: memory only */ }
    return until;
  }

  /** The transports to try for the next connection, in order. */
  order(now = Date.now()): TransportName[] {
    const all = [...this.transports];
    if (!all.includes('websocket') || all.length === 1 || this.webSocketBrokenUntil <= now) return all;
    return [...all.filter((t) => t !== 'websocket'), 'websocket'];
  }

  /** Another transport worked where a WebSocket had just failed. */
  webSocketFailed(now = Date.now()): void {
    this.#brokenUntil = now + this.memoryMs;
    try {
      this.storage?.setItem(this.storageKey, String(this.#brokenUntil));
    } catch { /* full or forbidden: memory only */ }
  }

  /** A WebSocket reached `welcome`: it works here (again). */
  webSocketWorked(): void {
    if (this.#brokenUntil === 0 && this.webSocketBrokenUntil === 0) return;
    this.#brokenUntil = 0;
    try {
      this.storage?.removeItem(this.storageKey);
    } catch { /* memory only */ }
  }

  /** Whether a connection on `current` should look for a WebSocket again (it is preferred, and tried later). */
  prefersWebSocketTo(current: TransportName): boolean {
    const ws = this.transports.indexOf('websocket');
    return ws >= 0 && current !== 'websocket' && ws < this.transports.indexOf(current);
  }
}
