import type { StoredMessage } from '../broker.js';
import type { Restriction } from '../moderation.js';

/**
 * What changed about one room's messages in the in-process broker, as the
 * Redis scripts keep it (see redis/change-scripts.ts). A deleted message keeps
 * its place in the room's entries as its tombstone, and the entries a delete
 * removed stay there unseen, so ids a reader saw remain points it continues from.
 */
export class RoomChanges {
  /** message id -> its current body (edited, or a tombstone) */
  readonly bodies = new Map<string, string>();
  /** message id -> ids of its edits' entries */
  readonly edits = new Map<string, string[]>();
  /** message id -> reaction -> users */
  readonly reactions = new Map<string, Map<string, Set<string>>>();
  /** deleted messages */
  readonly gone = new Set<string>();
  /** entries no reader gets any more: deleted messages' edits */
  readonly removed = new Set<string>();
  readonly moderators = new Set<string>();
  readonly restrictions = new Map<string, Restriction>();

  /** A message entry as readers get it; undefined for an entry they do not get. */
  current(entry: StoredMessage, reader: string): StoredMessage | undefined {
    if (this.removed.has(entry.id)) return undefined;
    if (entry.change !== undefined) return entry;
    const body = this.bodies.get(entry.id) ?? entry.body;
    const counts = this.reactions.get(entry.id);
    if (counts === undefined || counts.size === 0) return body === entry.body ? entry : { ...entry, body };
    const all: Record<string, number> = {};
    const mine: string[] = [];
    for (const [reaction, users] of counts) {
      all[reaction] = users.size;
      if (users.has(reader)) mine.push(reaction);
    }
    const own = mine.length > 0 ? `,"mine":${JSON.stringify(mine)}` : '';
    return { ...entry, body: `${body.slice(0, -1)},"reactions":${JSON.stringify(all)}${own}}` };
  }

  /** Trimming took these entries: what was kept about them goes too. */
  forget(entries: readonly StoredMessage[]): void {
    for (const { id } of entries) {
      this.bodies.delete(id);
      this.edits.delete(id);
      this.reactions.delete(id);
      this.gone.delete(id);
      this.removed.delete(id);
    }
  }
}
