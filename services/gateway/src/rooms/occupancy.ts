import type { Session } from '../session.js';

/** At most one `occupancy` per room this often, and one coalesced `typing` (contract: "Rooms of any size"). */
export const CROWD_WINDOW_MS = 1000;

/**
 * What a room's members on this node know of its count, so that a room above
 * the list limit L tells them with `occupancy` (at most once a second, only a
 * count that changed since the one each got) instead of a `presence` per user.
 * The count is the one the room's presence changes carry: they arrive in the
 * order they happened, so the last one heard is the room's count.
 */
export class RoomOccupancy {
  /** The newest count heard: from the room's presence changes, or a join's answer before any was. */
  count: number | undefined;
  /** Whether the members here were last told the room is above L (occupancy) rather than at or below it (presence). */
  crowded = false;
  /** The count every member here but `joiners` was last told. */
  told: number | undefined;
  /** Members that joined since `told`, with the count their `joined` said; made when first needed. */
  joiners: Map<Session, number> | undefined;
  /** The count changed since the last announcement and members have yet to be told. */
  due = false;
  announcedAt = Number.NEGATIVE_INFINITY;
  /** When a typing event last went out to the members here, and when this node last published one. */
  typingRelayedAt = Number.NEGATIVE_INFINITY;
  typingSentAt = Number.NEGATIVE_INFINITY;

  /** A count from a presence change (-1: from a node that sends none). */
  heard(count: number): void {
    if (count >= 0) this.count = count;
  }

  /** A join's answer: the count, when no change was heard yet (a change heard later is newer). */
  answered(count: number, limit: number): void {
    if (this.count !== undefined) return;
    this.count = count;
    this.crowded = count > limit;
  }

  /**
   * A member joined, told `count`. Remembered only while it matters: in a room
   * within the limit presence keeps every member up to date until a crossing,
   * whose count (above the limit) nobody was told yet.
   */
  joined(session: Session, count: number, limit: number): void {
    if (!this.crowded && count <= limit) return;
    (this.joiners ??= new Map()).set(session, count);
  }

  left(session: Session): void {
    this.joiners?.delete(session);
  }

  /** Members here are now told `count` (per-user presence kept them up to date, or an announcement did). */
  settle(): void {
    this.told = this.count;
    this.joiners = undefined;
    this.due = false;
  }
}
