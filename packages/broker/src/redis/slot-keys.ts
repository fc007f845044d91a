import { keySlot } from './slot.js';
import { slotTag } from './slot-tags.js';

/**
 * A family of keys a script of any room or user may write: one key on a single
 * server; on a Redis Cluster one per slot, tagged to land on that slot, so the
 * script writes the one of its own slot (the archive's dirty sets, the event streams).
 */
export class SlotKeys {
  /** `name(tag)` names the key of the slot `tag` lands on; `name()` the single one. */
  constructor(private readonly name: (tag?: string) => string, readonly sharded: boolean) {}

  /** The key of the slot `key` lives on. */
  of(key: string): string {
    return this.sharded ? this.name(slotTag(keySlot(key))) : this.name();
  }

  /** Every key of the family. */
  all(): string[] {
    if (!this.sharded) return [this.name()];
    return Array.from({ length: 16_384 }, (_, slot) => this.name(slotTag(slot)));
  }
}
