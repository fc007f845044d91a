import { encodeOccupancy } from '@chat/protocol';
import type { TemplatedApp } from 'uWebSockets.js';
import type { Session } from '../session.js';
import type { Frame } from './join-sync.js';
import type { LocalRoom } from './local-room.js';
import { CROWD_WINDOW_MS } from './occupancy.js';

/** How often rooms whose count changed are looked at for an `occupancy` that is due. */
const TICK_MS = 100;
/** Above this many local members an `occupancy` goes out this many sockets per event-loop turn. */
const SLICE = 500;

/**
 * Tells the members of rooms above the list limit their count (see RoomOccupancy):
 * at once when asked (a crossing), otherwise at most once a second per room
 * whose count changed. The ticker runs only while some room is due, so rooms
 * that change nothing cost no timer.
 */
export class OccupancyAnnouncer {
  /** Rooms whose count changed since their members were told. */
  readonly #due = new Set<LocalRoom>();
  #ticker: NodeJS.Timeout | undefined;
  #stopped = false;

  /** `held(room)`: whether this node still holds that room (a released one is skipped). */
  constructor(private readonly app: TemplatedApp, private readonly announced: { inc(): void }, private readonly held: (room: LocalRoom) => boolean) {}

  /** The room's count changed: its members are told within a second. */
  changed(room: LocalRoom): void {
    const occupancy = room.occupancy;
    if (occupancy.due) return;
    occupancy.due = true;
    this.#due.add(room);
    if (this.#ticker !== undefined || this.#stopped) return;
    this.#ticker = setInterval(() => this.#announceDue(Date.now()), TICK_MS);
    this.#ticker.unref();
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#ticker);
    this.#ticker = undefined;
  }

  /**
   * Tells the members here the room's count, each only if it differs from the one
   * they were last told; not those in `knowing`, whose `joined` is newer than what
   * was heard here (by default every member ahead).
   */
  announce(room: LocalRoom, now: number, knowing: readonly Session[] = room.occupancy.includes(room.occupancy.seq + 1)): void {
    const occupancy = room.occupancy;
    const { count, seq } = occupancy;
    if (count === undefined) return;
    const frame = encodeOccupancy(room.name, count);
    for (const p of room.pending) p.held.push({ kind: 'occupancy', count, seq, frame });
    const skip = [...knowing];
    const unaware: Session[] = [];
    for (const [session, told] of occupancy.joiners ?? []) (told === count ? skip : unaware).push(session);
    const announcement = ++occupancy.announcements;
    if (occupancy.told === count) for (const session of unaware) session.send(frame);
    else if (room.holders.size <= SLICE) room.publishExcept(this.app, frame, skip);
    else this.#announceInSlices(room, frame, announcement, new Set(skip));
    occupancy.settle();
    occupancy.announcedAt = now;
    this.announced.inc();
  }

  /**
   * A publish to thousands of sockets is thousands of writes in one go, which
   * would hold up every join and message behind it; in a big room the count goes
   * out a slice at a time instead, each slice its own turn of the event loop. A
   * newer announcement stops an older one (it tells everyone the newer count).
   */
  #announceInSlices(room: LocalRoom, frame: Frame, announcement: number, skip: ReadonlySet<Session>): void {
    const recipients = room.sessions().filter((s) => !skip.has(s) && room.isJoined(s));
    const bytes = typeof frame === 'string' ? Buffer.from(frame) : frame; // encoded once, not once per socket
    const sendFrom = (start: number): void => {
      if (room.occupancy.announcements !== announcement) return;
      const end = Math.min(start + SLICE, recipients.length);
      for (let i = start; i < end; i++) recipients[i]!.send(bytes);
      if (end < recipients.length) setImmediate(sendFrom, end);
    };
    sendFrom(0);
  }

  #announceDue(now: number): void {
    for (const room of this.#due) {
      const occupancy = room.occupancy;
      if (!occupancy.due || !this.held(room)) {
        this.#due.delete(room);
      } else if (now - occupancy.announcedAt >= CROWD_WINDOW_MS) {
        this.#due.delete(room);
        this.announce(room, now);
      }
    }
    if (this.#due.size > 0) return;
    clearInterval(this.#ticker);
    this.#ticker = undefined;
  }
}
