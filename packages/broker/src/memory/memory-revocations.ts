import { RevocationTable, type TokenRevocations } from '../revocations.js';
import type { MemoryHub } from './memory-broker.js';

/** Revocations of a single process: one table in the hub its brokers share. */
export class MemoryRevocations implements TokenRevocations {
  constructor(private readonly hub: MemoryHub) {}

  async revoke(user: string, before: number, ttlMs: number): Promise<void> {
    this.#table.merge(user, { before, until: Date.now() + ttlMs });
  }

  revokedBefore(user: string): number | undefined {
    return this.#table.before(user, Date.now());
  }

  async close(): Promise<void> {}

  get #table(): RevocationTable {
    return this.hub.revocations;
  }
}
