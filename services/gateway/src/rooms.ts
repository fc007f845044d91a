import { BrokerUnavailableError, type Broker, type StoredMessage } from '@chat/broker';
import { CloseCode, compareIds, encodeJoined, messageFrameHead } from '@chat/protocol';
import type { TemplatedApp } from 'uWebSockets.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';
import type { Session } from './session.js';

type Frame = string | Uint8Array;

interface JoinRead {
  messages: StoredMessage[];
  /** Whether every message after `since` was still stored; undefined for a join without `since`. */
  complete: boolean | undefined;
  /** The newest id stored when the read ran. */
  newest: string;
}

/** Something that arrived while a join waited: a message (with its id) or an event about a user. */
interface Held {
  id?: string;
  about?: string;
  frame: Frame;
}

/** A join waiting for its stored range; live traffic of the room collects here meanwhile. */
class PendingJoin {
  readonly held: Held[] = [];
  /** Set while the join waits for the room's live stream to reach this id. */
  waitingFor: string | undefined;
  #resume: ((err?: Error) => void) | undefined;

  constructor(readonly session: Session) {}

  /**
   * Resolves when `resume` is called (live delivery reached `id`), or after
   * `timeoutMs`: a copy that has not come by then is not coming (it was stored
   * while this node was not subscribed).
   */
  waitForLive(id: string, timeoutMs: number): Promise<void> {
    this.waitingFor = id;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.resume(), timeoutMs);
      this.#resume = (err) => {
        clearTimeout(timer);
        if (err) reject(err);
        else resolve();
      };
    });
  }

  resume(err?: Error): void {
    this.waitingFor = undefined;
    const resume = this.#resume;
    this.#resume = undefined;
    resume?.(err);
  }
}

/** One room as this node sees it. Its uWS topic does the local fan-out. */
class LocalRoom {
  readonly topic: string;
  /** Frames of this room's messages are `head + id + body`. */
  readonly head: string;
  /** user -> their sessions joined or joining here: the user's presence through this node. */
  readonly holders = new Map<string, Set<Session>>();
  /** Sessions subscribed to the topic. */
  readonly joined = new Set<Session>();
  readonly pending = new Set<PendingJoin>();
  /** user -> when their last typing event was relayed. */
  readonly typingAt = new Map<string, number>();
  /**
   * The watermark: every message up to this id was fanned out here, or was
   * already stored when the subscription went live (so every joiner reads it
   * from the stream). Live copies at or below it are dropped. It is also the
   * point to catch up from after a broker outage. Set once `settled`.
   */
  lastId: string | undefined;
  /** Settles when the subscription is live, the watermark set, and no catch-up runs. Joins wait for it. */
  settled: Promise<void>;
  /** Live messages that arrive while a catch-up reads the stream. */
  catchUp: Held[] | null = null;
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

  frame(message: StoredMessage): string {
    return this.head + message.id + message.body;
  }

  hold(session: Session): void {
    let sessions = this.holders.get(session.user);
    if (sessions === undefined) this.holders.set(session.user, (sessions = new Set()));
    sessions.add(session);
  }

  /** True when the session's user has no session left here. */
  release(session: Session): boolean {
    const sessions = this.holders.get(session.user);
    if (sessions === undefined || !sessions.delete(session) || sessions.size > 0) return false;
    this.holders.delete(session.user);
    this.typingAt.delete(session.user);
    return true;
  }

  /** The sessions of `user` subscribed to the topic. */
  joinedSessionsOf(user: string): Session[] {
    const out: Session[] = [];
    for (const s of this.holders.get(user) ?? []) if (this.joined.has(s)) out.push(s);
    return out;
  }
}

export interface RoomRegistryOptions {
  app: TemplatedApp;
  broker: Broker;
  log: Logger;
  metrics: Metrics;
  /** Messages in `joined` without `since`. */
  joinHistory: number;
  /** Most messages replayed for `since` and read back by a catch-up: everything a room stores. */
  replayLimit: number;
  /** Minimum time between two typing events of one user in one room. */
  typingIntervalMs: number;
  /** Longest a join waits for the live copy of a message it already read. */
  liveWaitMs: number;
  /** Keeps track of broker calls that shutdown should wait for. */
  track<T>(operation: Promise<T>): Promise<T>;
}

/**
 * Local rooms: who is in them on this node, and the broker subscription that
 * feeds them. A room is subscribed while it has a local member or a join in
 * progress. Every message reaches each member once, in id order, with no gap.
 */
export class RoomRegistry {
  readonly #rooms = new Map<string, LocalRoom>();
  readonly #options: RoomRegistryOptions;

  constructor(options: RoomRegistryOptions) {
    this.#options = options;
  }

  get size(): number {
    return this.#rooms.size;
  }

  /** The frame head of a room, for building frames from stored messages. */
  head(room: string): string {
    return this.#rooms.get(room)?.head ?? messageFrameHead(room);
  }

  /**
   * Sends `joined` (members, then stored messages: the latest, or all after
   * `since`), then live traffic, with no gap and no duplicate: the subscription
   * is live before the stream is read, live traffic is held until the read is
   * in, and only messages newer than what was read are passed on.
   * Joining a room already joined re-syncs it the same way.
   */
  async join(session: Session, name: string, since: string | undefined, ref: string | undefined): Promise<void> {
    const { broker } = this.#options;
    if (!session.open) return;
    const room = this.#acquire(name);
    room.hold(session);
    session.unsubscribe(room.topic);
    room.joined.delete(session);
    const pending = new PendingJoin(session);
    room.pending.add(pending);
    try {
      await room.settled;
      // Left or closed while the subscription came up: its release already ran, so
      // writing presence now would leave a member nobody withdraws.
      if (!room.pending.has(pending) || !session.open) return;
      const [members, { messages, complete, newest }] = await Promise.all([
        this.#options.track(broker.presenceJoin(name, session.user)),
        this.#readForJoin(name, since),
      ]);
      // A message stored before the read may still be on its way here live (pub/sub
      // and commands travel on different connections, and other gateways may be
      // ahead): subscribing before it arrived would deliver it twice.
      if (compareIds(newest, room.lastId!) > 0) await pending.waitForLive(newest, this.#options.liveWaitMs);
      // From here to the subscribe nothing awaits, so no live message can slip between.
      if (!room.pending.delete(pending) || !session.open) return; // left or closed meanwhile
      const newestRead = messages.at(-1)?.id ?? since;
      session.cork(() => {
        session.send(encodeJoined(name, ref, members, messages.map((m) => room.frame(m)), complete));
        for (const h of pending.held) {
          if (h.id === undefined ? h.about !== session.user : newestRead === undefined || compareIds(h.id, newestRead) > 0) {
            session.send(h.frame);
          }
        }
        session.subscribe(room.topic);
      });
      room.joined.add(session);
    } catch (err) {
      room.pending.delete(pending);
      this.#release(room, session);
      throw err;
    }
  }

  leave(session: Session, name: string): void {
    const room = this.#rooms.get(name);
    if (room === undefined) return;
    session.unsubscribe(room.topic);
    room.joined.delete(session);
    for (const p of room.pending) if (p.session === session) room.pending.delete(p);
    this.#release(room, session);
  }

  /** A room message from the broker. */
  /** `prev`: the id stored before this one; newer than the last one here means some were missed. */
  deliver(name: string, id: string, frame: Frame, prev?: string): void {
    const room = this.#rooms.get(name);
    if (room === undefined) return;
    // At or below the watermark: every joiner has it from the stream already.
    if (room.lastId !== undefined && compareIds(id, room.lastId) <= 0) return;
    if (room.catchUp === null && prev !== undefined && prev !== room.lastId && room.lastId !== undefined && compareIds(prev, room.lastId) > 0) {
      // A gap in the live stream (a subscription that was briefly deaf, moving or failing
      // over): read the missed ones back before this one, so members still get all, in order.
      this.#options.log.warn({ room: name, lastId: room.lastId, prev }, 'gap in the live stream; reading back');
      void this.#catchUp(room);
    }
    if (room.catchUp !== null) {
      room.catchUp.push({ id, frame });
      return;
    }
    this.#fanOut(room, id, frame);
  }

  /** An event about `about` (presence, typing): to every local member but that user's sessions. */
  deliverEvent(name: string, about: string, frame: Frame): void {
    const room = this.#rooms.get(name);
    if (room === undefined) return;
    for (const p of room.pending) p.held.push({ about, frame });
    const own = room.joinedSessionsOf(about);
    if (own.length === 0) this.#options.app.publish(room.topic, frame, false);
    else if (own.length === 1) own[0]!.publishExceptSelf(room.topic, frame); // uWS skips the publisher
    else for (const s of room.joined) if (s.user !== about) s.send(frame);
  }

  /** Whether a typing event of `user` may go out now (one per user and room per interval). */
  claimTyping(name: string, user: string, now: number): boolean {
    const room = this.#rooms.get(name);
    if (room === undefined) return false;
    const last = room.typingAt.get(user);
    if (last !== undefined && now - last < this.#options.typingIntervalMs) return false;
    room.typingAt.set(user, now);
    return true;
  }

  /**
   * After a broker outage: reads back what each room missed and fans it out
   * before any newer live message. A room whose gap is no longer stored, or
   * cannot be read, closes its local sockets with 1013 so their clients rejoin
   * with `since` and learn of the gap, rather than miss messages silently.
   */
  async catchUpAll(): Promise<void> {
    await Promise.all([...this.#rooms.values()].map((room) => this.#catchUp(room)));
  }

  async #catchUp(room: LocalRoom): Promise<void> {
    const from = room.lastId;
    if (from === undefined) return;
    if (room.catchUp !== null) {
      room.catchUpAgain = true;
      return;
    }
    room.catchUp = [];
    let settle!: () => void;
    room.settled = new Promise((resolve) => (settle = resolve));
    try {
      const { messages, complete } = await this.#options.broker.after(room.name, from, this.#options.replayLimit);
      if (!complete) throw new Error('messages missed during the outage are no longer stored');
      for (const m of messages) this.#fanOut(room, m.id, room.frame(m));
      for (const h of room.catchUp) if (compareIds(h.id!, room.lastId!) > 0) this.#fanOut(room, h.id!, h.frame);
      if (messages.length > 0) this.#options.log.info({ room: room.name, recovered: messages.length }, 'read back what the live stream missed');
    } catch (err) {
      this.#options.log.warn({ err, room: room.name }, 'catch-up failed; closing local members so they resync');
      for (const p of room.pending) if (p.waitingFor !== undefined) p.resume(new BrokerUnavailableError('room resync failed; retry'));
      for (const session of [...room.joined]) session.end(CloseCode.TRY_AGAIN_LATER, 'missed messages; rejoin with since');
      // Nobody here has what arrived meanwhile, and later joiners read it from the stream.
      for (const h of room.catchUp) room.advance(h.id!);
    } finally {
      room.catchUp = null;
      settle();
    }
    if (room.catchUpAgain) {
      room.catchUpAgain = false;
      await this.#catchUp(room);
    }
  }

  #fanOut(room: LocalRoom, id: string, frame: Frame): void {
    const { app, metrics } = this.#options;
    room.lastId = id;
    for (const p of room.pending) p.held.push({ id, frame });
    app.publish(room.topic, frame, false);
    if (metrics.enabled) metrics.deliveries.inc(app.numSubscribers(room.topic));
    // After the publish: a join resumed now subscribes too late to get this message twice.
    for (const p of room.pending) if (p.waitingFor !== undefined && compareIds(id, p.waitingFor) >= 0) p.resume();
  }

  async #readForJoin(name: string, since: string | undefined): Promise<JoinRead> {
    const { broker, replayLimit, joinHistory } = this.#options;
    if (since !== undefined) return broker.after(name, since, replayLimit);
    const messages = await broker.history(name, undefined, Math.max(joinHistory, 1));
    const newest = messages.at(-1)?.id ?? '0-0';
    return { messages: messages.slice(messages.length - joinHistory), complete: undefined, newest };
  }

  async #newestStored(name: string): Promise<string> {
    const [newest] = await this.#options.broker.history(name, undefined, 1);
    return newest?.id ?? '0-0';
  }

  /**
   * Subscribes, then reads the newest stored id as the watermark: every message
   * after it will arrive live, and everything up to it is in the stream for joiners.
   */
  #acquire(name: string): LocalRoom {
    let room = this.#rooms.get(name);
    if (room === undefined) {
      const created: LocalRoom = new LocalRoom(name, this.#options.broker.subscribeRoom(name)
        .then(() => this.#newestStored(name))
        .then((newest) => created.advance(newest)));
      room = created;
      this.#rooms.set(name, room);
    }
    return room;
  }

  /** Withdraws the user's presence when their last session here is gone, and the room when it is empty. */
  #release(room: LocalRoom, session: Session): void {
    const { broker, log, track } = this.#options;
    if (room.release(session)) {
      track(broker.presenceLeave(room.name, session.user))
        .catch((err: unknown) => log.warn({ err, room: room.name }, 'presence leave failed'));
    }
    if (room.holders.size > 0 || this.#rooms.get(room.name) !== room) return;
    this.#rooms.delete(room.name);
    broker.unsubscribeRoom(room.name).catch((err: unknown) => log.warn({ err, room: room.name }, 'unsubscribe failed'));
  }
}
