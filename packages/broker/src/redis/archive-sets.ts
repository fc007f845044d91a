import type { KeySpace } from './keys.js';
import { keySlot } from './slot.js';
import { slotTag } from './slot-tags.js';

/**
 * Where a room is marked for the archiver: one set on a single server; on a
 * Redis Cluster the set of the room's own slot, so the append script can write it.
 */
export class ArchiveSets {
  constructor(private readonly keys: KeySpace, private readonly sharded: boolean) {}

  /** The set of `room`. */
  of(room: string): string {
    return this.sharded ? this.keys.archiveDirty(slotTag(keySlot(this.keys.roomStream(room)))) : this.keys.archiveDirty();
  }

  /** Every set there is. */
  all(): string[] {
    if (!this.sharded) return [this.keys.archiveDirty()];
    return Array.from({ length: 16_384 }, (_, slot) => this.keys.archiveDirty(slotTag(slot)));
  }
}
