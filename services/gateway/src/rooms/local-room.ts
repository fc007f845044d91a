import type { StoredMessage } from '@chat/broker';
import { compareIds, messageFrameHead } from '@chat/protocol';
import type { Session } from '../session.js';
import type { HeldMessage, PendingJoin } from './join-sync.js';
import { RoomOccupancy } from './occupancy.js';

/** One room as this node sees it. Its uWS topic does the local fan-out. */
export class LocalRoom {
  readonly topic: string;
  /** Frames of this room's messages are `head + id + body`. */
  readonly head: string;
  /** user -> their sessions joined or joining here: the user's presence through this node. */
  readonly holders = new Map<string, Set<Session>>();
  /** Sessions subscribed to the topic. */
  readonly joined = new Set<Session>();
  readonly pending = new Set<PendingJoin>();
  /** user -> when their last typing event was relayed; made on the first. */
  typingAt: Map<string, number> | undefined;
  readonly occupancy = new RoomOccupancy();
  /**
   * The watermark: every message up to this id was fanned out here, or was
   * already stored when the subscription went live (so every joiner reads it
   * from the stream). Live copies at or below it are dropped. It is also the
   * point to catch up from after a broker outage. Set once `settled`.
   */
  lastId: string | undefined;
  /**
   * The newest loss mark every member here already knows of: it was set before
   * they joined, or they were resynced for it. Only a newer one can leave them a hole.
   */
  knownLoss = '0-0';
  /** Settles when the subscription is live, the watermark set, and no catch-up runs. Joins wait for it. */
  settled: Promise<void>;
  /** Live messages that arrive while a catch-up reads the stream. */
  catchUp: HeldMessage[] | null = null;
  /** Another outage ended while a catch-up was reading: what it missed may be newer than that read. */
  catchUpAgain = false;

  constructor(readonly name: string, settled: Promise<void>) {
    this.topic = `room:${name}`;
    this.head = messageFrameHead(name);
    this.settled = settled;
    settled.catch(() => {}); // awaited by the joins; a failed one must not crash the process
  }

  /** Raises the watermark (never lowers it). */
  advance(id: string): void {
    if (this.lastId === undefined || compareIds(id, this.lastId) > 0) this.lastId = id;
  }

  /** Raises the known loss mark (never lowers it). */
  knowLoss(id: string): void {
    if (compareIds(id, this.knownLoss) > 0) this.knownLoss = id;
  }

  frame(message: StoredMessage): string {
    return this.head + message.id + message.body;
  }

  hold(session: Session): void {
    let sessions = this.holders.get(session.user);
    if (sessions === undefined) this.holders.set(session.user, (sessions = new Set()));
    sessions.add(session);
  }

  /** How many sessions of the session's user are left here; undefined when it held none. */
  release(session: Session): number | undefined {
    this.occupancy.left(session);
    const sessions = this.holders.get(session.user);
    if (sessions === undefined || !sessions.delete(session)) return undefined;
    if (sessions.size > 0) return sessions.size;
    this.holders.delete(session.user);
    this.typingAt?.delete(session.user);
    return 0;
  }

  /** Every session joined or joining here. */
  sessions(): Session[] {
    return [...this.holders.values()].flatMap((sessions) => [...sessions]);
  }

  /** The sessions of `user` subscribed to the topic. */
  joinedSessionsOf(user: string): Session[] {
    const out: Session[] = [];
    for (const s of this.holders.get(user) ?? []) if (this.joined.has(s)) out.push(s);
    return out;
  }
}
