import type { Session } from '../session.js';

/** At most one `occupancy` per room this often, and one coalesced `typing` (contract: "Rooms of any size"). */
export const CROWD_WINDOW_MS = 1000;

/** What a member was told when it joined: the count, and the last change that count includes. */
export interface Snapshot {
  count: number;
  seq: number;
}

/**
 * What a room's members on this node know of its count, so that a room above
 * the list limit L tells them with `occupancy` (at most once a second, only a
 * count that changed since the one each got) instead of a `presence` per user.
 *
 * The room's presence changes arrive numbered and in order (PresenceChange);
 * the members here are "in step" with the last one heard. A join's answer may
 * include changes not heard here yet (commands and pub/sub travel apart): its
 * member is *ahead* until they are heard, and must get none of them again.
 */
export class RoomOccupancy {
  /** The count after the last change heard (undefined before any). */
  count: number | undefined;
  /** The number of the last change heard. */
  seq = -1;
  /** The count every member in step but `joiners` was last told. */
  told: number | undefined;
  /** Members in step that joined since `told`, with the count they were told; made when first needed. */
  joiners: Map<Session, number> | undefined;
  /** Members whose `joined` included changes not heard here yet. */
  ahead: Map<Session, Snapshot> | undefined;
  /** The count changed since the last announcement and members have yet to be told. */
  due = false;
  announcedAt = Number.NEGATIVE_INFINITY;
  /** Counts announcements, so a newer one can stop an older one still going out in slices. */
  announcements = 0;
  /** When a typing event last went out to the members here, and when this node last published one. */
  typingRelayedAt = Number.NEGATIVE_INFINITY;
  typingSentAt = Number.NEGATIVE_INFINITY;

  /** Above the list limit: members learn the count from occupancy. */
  crowded(limit: number): boolean {
    return this.count !== undefined && this.count > limit;
  }

  /** A change heard: the room's count now. */
  heard(count: number, seq: number): void {
    this.count = count;
    this.seq = seq;
  }

  /**
   * A member joined, told `snapshot`. A member in step is remembered only while
   * it matters: in a room within the limit presence keeps it up to date until a
   * crossing, whose count nobody was told yet.
   */
  joined(session: Session, snapshot: Snapshot, limit: number): void {
    if (snapshot.seq > this.seq) (this.ahead ??= new Map()).set(session, snapshot);
    else this.#inStep(session, snapshot.count, limit);
  }

  left(session: Session): void {
    this.joiners?.delete(session);
    this.ahead?.delete(session);
  }

  /** Members whose `joined` already included change `seq`: it is not theirs to hear. */
  includes(seq: number): Session[] {
    const out: Session[] = [];
    for (const [session, snapshot] of this.ahead ?? []) if (snapshot.seq >= seq) out.push(session);
    return out;
  }

  /** Change `seq` was heard: members ahead up to it are in step now. */
  caughtUp(seq: number, limit: number): void {
    const ahead = this.ahead;
    if (ahead === undefined) return;
    for (const [session, snapshot] of ahead) {
      if (snapshot.seq > seq) continue;
      ahead.delete(session);
      this.#inStep(session, snapshot.count, limit);
    }
    if (ahead.size === 0) this.ahead = undefined;
  }

  /** Members in step are now told the count (per-user presence kept them up to date, or an announcement did). */
  settle(): void {
    this.told = this.count;
    this.joiners = undefined;
    this.due = false;
  }

  #inStep(session: Session, told: number, limit: number): void {
    if (!this.crowded(limit) && told <= limit) return;
    (this.joiners ??= new Map()).set(session, told);
  }
}
