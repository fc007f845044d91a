import type { StoredMessage } from '@chat/broker';
import type { TemplatedApp } from 'uWebSockets.js';
import { changeFrameHead, compareIds, messageFrameHead } from '@chat/protocol';
import type { Session } from '../session.js';
import { frameEvent } from '../transports/sse/events.js';
import type { HeldMessage, PendingJoin } from './join-sync.js';
import type { Frame } from '../transports/frame-sink.js';
import { RoomOccupancy } from './occupancy.js';

const NO_JOINS: ReadonlySet<PendingJoin> = new Set();

/**
 * One room as this node sees it, and the one record of which sessions have
 * joined it: a session receives the room's traffic exactly when it is a member
 * here. WebSocket members are the subscribers of the room's uWS topic, which
 * fans out natively; event-stream members, which uWS cannot publish to, are
 * written to one by one with the event framed once per publish. A node may
 * hold many rooms of two, so what only some rooms need is made when first needed.
 */
export class LocalRoom {
  readonly topic: string;
  /** Frames of this room's messages are `head + id + body`. */
  readonly head: string;
  /** user -> their sessions joined or joining here (a user has few): the user's presence through this node. */
  readonly holders = new Map<string, Session[]>();
  #pending: Set<PendingJoin> | undefined;
  /** Joined members on event streams; made for the first. */
  #streams: Set<Session> | undefined;
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

  /** A stored entry's frame: a message's, or a change's (see MessageChanges). */
  frame(message: StoredMessage): string {
    if (message.change === undefined) return this.head + message.id + message.body;
    return changeFrameHead(this.name, message.change.kind) + message.id + message.body;
  }

  /** Joins waiting for their stored range: live traffic collects in them meanwhile. */
  get pending(): ReadonlySet<PendingJoin> {
    return this.#pending ?? NO_JOINS;
  }

  addPending(join: PendingJoin): void {
    (this.#pending ??= new Set()).add(join);
  }

  /** False when it was no longer waiting (left, closed, or already done). */
  deletePending(join: PendingJoin): boolean {
    const deleted = this.#pending?.delete(join) === true;
    if (this.#pending?.size === 0) this.#pending = undefined;
    return deleted;
  }

  hold(session: Session): void {
    const sessions = this.holders.get(session.user);
    if (sessions === undefined) this.holders.set(session.user, [session]);
    else if (!sessions.includes(session)) sessions.push(session);
  }

  /** How many sessions of the session's user are left here; undefined when it held none. */
  release(session: Session): number | undefined {
    this.occupancy.left(session);
    const sessions = this.holders.get(session.user);
    const at = sessions?.indexOf(session) ?? -1;
    if (at < 0) return undefined;
    sessions!.splice(at, 1);
    if (sessions!.length > 0) return sessions!.length;
    this.holders.delete(session.user);
    this.typingAt?.delete(session.user);
    return 0;
  }

  /** Every session joined or joining here. */
  sessions(): Session[] {
    return [...this.holders.values()].flat();
  }

  /** From now on the session gets the room's traffic. */
  admit(session: Session): void {
    const sink = session.sink;
    if (sink?.transport === 'ws') sink.subscribe(this.topic);
    else if (sink?.transport === 'sse') (this.#streams ??= new Set()).add(session);
  }

  /** The session gets none of the room's traffic from now on (a rejoin is dismissed until its range is out). */
  dismiss(session: Session): void {
    const sink = session.sink;
    if (sink?.transport === 'ws') sink.unsubscribe(this.topic);
    else if (this.#streams?.delete(session) === true && this.#streams.size === 0) this.#streams = undefined;
  }

  isJoined(session: Session): boolean {
    const sink = session.sink;
    if (sink?.transport === 'ws') return sink.isSubscribed(this.topic);
    return this.#streams?.has(session) === true;
  }

  /** Members joined here, for metrics (a native call: not on every publish when metrics are off). */
  joinedCount(app: TemplatedApp): number {
    return app.numSubscribers(this.topic) + (this.#streams?.size ?? 0);
  }

  /** The sessions of `user` joined here. */
  joinedSessionsOf(user: string): Session[] {
    return this.holders.get(user)?.filter((s) => this.isJoined(s)) ?? [];
  }

  /** To every member: one native publish, and one write per stream member of a once-framed event. */
  publish(app: TemplatedApp, frame: Frame): void {
    app.publish(this.topic, frame, false);
    if (this.#streams !== undefined) this.#writeStreams(frame, undefined);
  }

  /**
   * Publishes to every member but `except`: WebSockets among them leave the topic
   * for the publish (uWS skips only the publisher itself), so the cost stays one
   * native publish however big the room. Only those joined: putting back one that
   * was not (a join still waiting) would feed it too early.
   */
  publishExcept(app: TemplatedApp, frame: Frame, except: readonly Session[]): void {
    const [only] = except;
    const onlySink = only?.sink;
    if (except.length === 1 && onlySink?.transport === 'ws' && onlySink.isSubscribed(this.topic)) {
      onlySink.publishExceptSelf(this.topic, frame);
    } else {
      const off = except.filter((s) => s.sink?.transport === 'ws' && s.sink.isSubscribed(this.topic));
      for (const s of off) this.dismiss(s);
      app.publish(this.topic, frame, false);
      for (const s of off) this.admit(s);
    }
    if (this.#streams !== undefined) this.#writeStreams(frame, except);
  }

  #writeStreams(frame: Frame, except: readonly Session[] | undefined): void {
    const event = frameEvent(frame);
    for (const session of this.#streams!) {
      if (except?.includes(session) === true) continue;
      const sink = session.sink;
      if (sink?.transport === 'sse') sink.sendEvent(event);
    }
  }
}
