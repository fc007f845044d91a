import type { JoinedFrame, MembersFrame, OccupancyFrame, PresenceFrame } from './protocol.js';

/**
 * What the client knows of a joined room's users: the contract's "Rooms of any
 * size" as docs/protocol.md ("What a client does at a crossing") says to keep it.
 */
export interface MemberList {
  readonly room: string;
  /** Users with a connection joined to the room on any gateway (a user with several counts once). */
  readonly count: number;
  /** The gateway's list limit L (`joined.limit`); undefined when the gateway did not say. */
  readonly limit: number | undefined;
  /**
   * true: `users` is everyone in the room, and `presence` keeps it so (the room
   * has at most L users). false: the room is above L, or its list is being read
   * again after it came back within L: `users` is a sample, and `count` the
   * number to show; page through the room with `client.members()`.
   */
  readonly complete: boolean;
  /** Ascending by id (byte order), as the gateway pages them. */
  readonly users: readonly string[];
}

/** The largest page a `members` request gets (the contract's cap). */
export const MAX_PAGE = 1000;

type Mode =
  | { kind: 'complete' }
  | { kind: 'sample' }
  /** Reading the list from the start after a crossing down; presence read meanwhile waits in `held`. */
  | { kind: 'repaging'; token: number; users: string[]; held: PresenceFrame[] };

/** What the client must do after an event: nothing, tell the application the list changed wholesale, or read the list again. */
export type RosterEffect = { kind: 'none' } | { kind: 'replaced' } | { kind: 'repage'; token: number };

/** The answer to one re-page request: stale (ignore), another page to read, or done (the list was replaced). */
export type RepageStep = { kind: 'stale' } | { kind: 'more'; after: string } | { kind: 'done' };

let tokens = 0;

/**
 * One room's count and member list, from its `joined` frame on (a rejoin makes
 * a new one). Pure state: the client sends the requests it asks for.
 *
 * - At most L users: the list is complete; `presence` online/offline are set
 *   operations on it (a repeat changes nothing), and the count is its size.
 * - Above L: the list is a sample and `occupancy` carries the count.
 * - An `occupancy` above L while complete is a crossing up: the list stops being kept.
 * - An `occupancy` at or below L while above is a crossing down: departures above L
 *   were never sent, so the list is read again from the start, and `presence`
 *   read while that is in flight is applied to the new list once it is in.
 * - A `presence` while above L also means the room is back within L (a gateway
 *   that did not say its limit, or a re-read that failed): it starts the re-read too.
 */
export class RoomRoster {
  readonly room: string;
  readonly limit: number | undefined;
  #count: number;
  #users: Set<string>;
  #sorted: string[] | undefined;
  #mode: Mode;

  constructor(joined: JoinedFrame) {
    this.room = joined.room;
    this.limit = joined.limit;
    this.#users = new Set(joined.members);
    const count = typeof joined.count === 'number' ? joined.count : joined.members.length;
    // Without a limit, a joined list that names fewer users than the count is a sample.
    const within = this.limit !== undefined ? count <= this.limit : joined.members.length >= count;
    this.#mode = within ? { kind: 'complete' } : { kind: 'sample' };
    this.#count = within ? this.#users.size : count;
  }

  get count(): number {
    return this.#count;
  }

  get complete(): boolean {
    return this.#mode.kind === 'complete';
  }

  /** Users per re-page request: L (one page), within the contract's cap. */
  get pageLimit(): number {
    return Math.min(this.limit ?? MAX_PAGE, MAX_PAGE);
  }

  snapshot(): MemberList {
    this.#sorted ??= [...this.#users].sort(byId);
    return { room: this.room, count: this.#count, limit: this.limit, complete: this.complete, users: this.#sorted };
  }

  presence(frame: PresenceFrame): RosterEffect {
    const mode = this.#mode;
    switch (mode.kind) {
      case 'complete':
        this.#apply(frame);
        this.#count = this.#users.size;
        return { kind: 'none' };
      case 'repaging':
        mode.held.push(frame);
        return { kind: 'none' };
      case 'sample':
        return this.#startRepage([frame]);
      default:
        return unreachable(mode);
    }
  }

  occupancy(frame: OccupancyFrame): RosterEffect {
    // Occupancy goes out only above L, or at a crossing down; without a limit it reads as "above".
    const above = this.limit === undefined || frame.count > this.limit;
    const mode = this.#mode;
    if (above) {
      this.#count = frame.count;
      if (mode.kind === 'sample') return { kind: 'none' };
      this.#mode = { kind: 'sample' }; // crossed up (a re-read in flight is dropped: its answer is stale)
      return { kind: 'replaced' };
    }
    switch (mode.kind) {
      case 'complete':
        return { kind: 'none' }; // the list, kept by presence, is the count
      case 'repaging':
        this.#count = frame.count;
        return { kind: 'none' };
      case 'sample':
        this.#count = frame.count;
        return this.#startRepage([]);
      default:
        return unreachable(mode);
    }
  }

  /**
   * A page of the re-read `token` asked for. The list is replaced once the
   * last page is in (presence held meanwhile applied on top); a room found above
   * L again keeps the pages read as its sample (its `occupancy` follows or came).
   */
  repaged(token: number, page: MembersFrame): RepageStep {
    const mode = this.#mode;
    if (mode.kind !== 'repaging' || mode.token !== token) return { kind: 'stale' };
    mode.users.push(...page.users);
    const above = this.limit !== undefined && page.count > this.limit;
    if (page.next !== undefined && !above && this.limit !== undefined) return { kind: 'more', after: page.next };
    this.#users = new Set(mode.users);
    this.#sorted = undefined;
    if (above || page.next !== undefined) {
      this.#mode = { kind: 'sample' };
      this.#count = page.count;
    } else {
      this.#mode = { kind: 'complete' };
      for (const p of mode.held) this.#apply(p);
      this.#count = this.#users.size;
    }
    return { kind: 'done' };
  }

  /** The re-read could not be done: the list stays a sample; the next `presence` starts another. */
  repageFailed(token: number): boolean {
    const mode = this.#mode;
    if (mode.kind !== 'repaging' || mode.token !== token) return false;
    this.#mode = { kind: 'sample' };
    return true;
  }

  #startRepage(held: PresenceFrame[]): RosterEffect {
    const token = ++tokens;
    this.#mode = { kind: 'repaging', token, users: [], held };
    return { kind: 'repage', token };
  }

  #apply(frame: PresenceFrame): void {
    const changed = frame.state === 'online' ? !this.#users.has(frame.user) && this.#users.add(frame.user) : this.#users.delete(frame.user);
    if (changed) this.#sorted = undefined;
  }
}

function byId(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function unreachable(value: never): never {
  throw new Error(`unexpected ${JSON.stringify(value)}`);
}
