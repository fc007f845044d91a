import { compareUserIds, type Broker, type PresenceChange, type RoomHeadcount, type StoredMessage } from '@chat/broker';
import { CloseCode, compareIds, encodeJoined, encodePresence, messageFrameHead } from '@chat/protocol';
import type { TemplatedApp } from 'uWebSockets.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { Session } from '../session.js';
import type { RoomHistory } from '../history.js';
import { CatchUp, type ResyncReason } from './catch-up.js';
import { PendingJoin, type Frame, type Held } from './join-sync.js';
import { LocalRoom } from './local-room.js';
import { OccupancyAnnouncer } from './occupancy-announcer.js';
import type { RoomChannels } from './room-channels.js';
import { CROWD_WINDOW_MS } from './occupancy.js';

interface JoinRead {
  messages: StoredMessage[];
  /** Whether every message after `since` is in `messages` and none was lost; undefined for a join without `since`. */
  recovered: boolean | undefined;
  /** The newest id stored when the read ran. */
  newest: string;
}

export interface RoomRegistryOptions {
  app: TemplatedApp;
  broker: Broker;
  /** The room subscriptions this node shares. */
  channels: RoomChannels;
  log: Logger;
  metrics: Metrics;
  /** Messages in `joined` without `since`. */
  joinHistory: number;
  /** Most messages read back by a catch-up: everything a room stores. */
  replayLimit: number;
  /** Most messages replayed for a join with `since` (more with an archive: the stream and the archive). */
  joinReplayLimit: number;
  /** The stream, continued by the archive when there is one. */
  history: RoomHistory;
  /** Minimum time between two typing events of one user in one room. */
  typingIntervalMs: number;
  /** The contract's list limit L (see Config.memberListLimit). */
  listLimit: number;
  /** Longest a join waits for the live copy of a message it already read. */
  liveWaitMs: number;
  /** Keeps track of broker calls that shutdown should wait for. */
  track<T>(operation: Promise<T>): Promise<T>;
}

/**
 * Local rooms: who is in them on this node, and the broker subscription that
 * feeds them. A room is subscribed while it has a local member or a join in
 * progress. Every message reaches each member once, in id order, with no gap;
 * a member who may have missed one is closed (1013) to rejoin with `since`.
 * Joins, leaves, presence and typing cost the same in a room of any size: above
 * the list limit, members learn the count from `occupancy` instead of a
 * `presence` per user.
 */
export class RoomRegistry {
  readonly #rooms = new Map<string, LocalRoom>();
  readonly #announcer: OccupancyAnnouncer;
  readonly #options: RoomRegistryOptions;
  readonly #catchUp: CatchUp;
  /** Losses found while Redis could not record them: room -> newest lost id, recorded on the next catch-up. */
  readonly #unmarked = new Map<string, string>();
  /**
   * session -> the rooms it joined or is joining here. With each room's holders it is
   * one record, written only by #hold and #release, that commands and transports ask.
   */
  readonly #memberships = new WeakMap<Session, Set<string>>();

  constructor(options: RoomRegistryOptions) {
    this.#options = options;
    this.#announcer = new OccupancyAnnouncer(options.app, options.metrics.occupancyAnnouncements, (room) => this.#rooms.get(room.name) === room);
    this.#catchUp = new CatchUp({
      broker: options.broker,
      log: options.log,
      replayLimit: options.replayLimit,
      fanOut: (room, id, frame) => this.#fanOut(room, id, frame),
      resync: (room, why) => this.#resync(room, why, room.sessions()),
      markLost: (room, upTo) => {
        options.metrics.historyLosses.inc();
        return this.#markLost(room.name, upTo);
      },
    });
  }

  get size(): number {
    return this.#rooms.size;
  }

  /** Stops announcing counts (shutdown). */
  stop(): void {
    this.#announcer.stop();
  }

  /** Rooms reading back what their live stream missed; the node is not ready meanwhile. */
  get catchingUp(): number {
    return this.#catchUp.running;
  }

  /** The newest id delivered (or known stored) here, for appends to check that the stream still has it. */
  lastDelivered(room: string): string | undefined {
    return this.#rooms.get(room)?.lastId;
  }

  /** Whether the session joined `room`, or is joining it: a room counts as joined from the moment its join is read. */
  isIn(session: Session, room: string): boolean {
    return this.#memberships.get(session)?.has(room) === true;
  }

  /** Rooms the session joined or is joining. */
  countOf(session: Session): number {
    return this.#memberships.get(session)?.size ?? 0;
  }

  /** The connection closed: it leaves every room. */
  leaveAll(session: Session): void {
    for (const room of [...(this.#memberships.get(session) ?? [])]) this.leave(session, room);
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
    this.#hold(room, session);
    room.dismiss(session);
    room.occupancy.left(session); // a rejoin: what it was told before no longer holds
    const pending = new PendingJoin(session);
    room.addPending(pending);
    try {
      await room.settled;
      // Left or closed while the subscription came up: its release already ran, so
      // writing presence now would leave a member nobody withdraws.
      if (!room.pending.has(pending) || !session.open) return;
      const { listLimit } = this.#options;
      const [headcount, { messages, recovered, newest }] = await Promise.all([
        this.#options.track(broker.presence.join(name, session.user, { connections: room.holders.get(session.user)?.length ?? 1, list: listLimit })),
        this.#readForJoin(name, since, session.user),
      ]);
      // A message stored before the read may still be on its way here live (pub/sub
      // and commands travel on different connections, and other gateways may be
      // ahead): subscribing before it arrived would deliver it twice.
      if (compareIds(newest, room.lastId!) > 0) await pending.waitForLive(newest, this.#options.liveWaitMs);
      // From here to the subscribe nothing awaits, so no live message can slip between.
      if (!room.deletePending(pending) || !session.open) return; // left or closed meanwhile
      // Where the member is once it has the history: live messages go on from here.
      const position = messages.at(-1)?.id ?? since ?? newest;
      let told = headcount.count;
      session.cork(() => {
        // `history` holds messages only; the changes a rejoin replays follow it, in order, before anything live.
        const changes = messages.some((m) => m.change !== undefined);
        const history = changes ? messages.filter((m) => m.change === undefined) : messages;
        session.send(encodeJoined(name, ref, { count: headcount.count, members: membersToList(headcount, session.user, listLimit), limit: listLimit },
          history.map((m) => room.frame(m)), recovered, position));
        if (changes) for (const m of messages) if (m.change !== undefined) session.send(room.frame(m));
        for (const h of pending.held) {
          if (!isNews(h, session.user, position, headcount.seq, told)) continue;
          if (h.kind === 'occupancy') told = h.count;
          session.send(h.frame);
        }
        room.admit(session);
      });
      room.occupancy.joined(session, { count: told, seq: headcount.seq }, listLimit);
      if (since !== undefined) this.#options.metrics.rejoins.incLabel(recovered ? 'recovered' : 'gap');
    } catch (err) {
      room.deletePending(pending);
      this.#release(room, session);
      throw err;
    }
  }

  leave(session: Session, name: string): void {
    const room = this.#rooms.get(name);
    if (room === undefined) {
      this.#forget(session, name);
      return;
    }
    room.dismiss(session);
    for (const p of room.pending) if (p.session === session) room.deletePending(p);
    this.#release(room, session);
  }

  /**
   * A room message from the broker. `prev` is the id stored before it: anything
   * but the last id delivered here means the live stream skipped messages (read
   * them back) or the stream lost the last one delivered here (a loss).
   */
  deliver(name: string, id: string, frame: Frame, prev: string): void {
    const room = this.#rooms.get(name);
    if (room === undefined) return;
    // At or below the watermark: every joiner has it from the stream already.
    if (room.lastId !== undefined && compareIds(id, room.lastId) <= 0) return;
    if (room.catchUp === null && prev !== room.lastId && room.lastId !== undefined) {
      this.#options.log.warn({ room: name, lastId: room.lastId, prev }, 'live stream does not follow on; reading back');
      void this.#catchUp.run(room);
    }
    if (room.catchUp !== null) {
      room.catchUp.push({ kind: 'message', id, frame });
      return;
    }
    this.#fanOut(room, id, frame);
  }

  /**
   * A user arrived in the room on some node or left it everywhere. At or below
   * the list limit the members here get `presence`, as in v1. Above it they get
   * `occupancy` instead: at once when this change crossed the limit (either
   * way), else at most once a second. Members whose `joined` already included
   * the change get nothing for it.
   */
  presenceChanged(name: string, change: PresenceChange): void {
    const room = this.#rooms.get(name);
    if (room === undefined) return;
    const { user, online, count, seq } = change;
    const presence = encodePresence(name, user, online ? 'online' : 'offline');
    if (seq < 0) return this.#deliverEvent(room, user, presence); // from a node that sends no count: as v1
    const { listLimit } = this.#options;
    const occupancy = room.occupancy;
    const before = online ? count - 1 : count + 1;
    const knowing = occupancy.includes(seq);
    occupancy.heard(count, seq);
    if (before > listLimit !== count > listLimit) {
      this.#announcer.announce(room, Date.now(), knowing);
    } else if (count <= listLimit) {
      this.#deliverEvent(room, user, presence, seq, knowing);
      occupancy.settle();
    } else {
      this.#announcer.changed(room);
    }
    occupancy.caughtUp(seq, listLimit);
  }

  /** An ephemeral event about `about` (typing): in a room above the list limit, one a second at most. */
  deliverTyping(name: string, about: string, frame: Frame): void {
    const room = this.#rooms.get(name);
    if (room === undefined) return;
    const occupancy = room.occupancy;
    if (occupancy.crowded(this.#options.listLimit)) {
      const now = Date.now();
      if (now - occupancy.typingRelayedAt < CROWD_WINDOW_MS) return;
      occupancy.typingRelayedAt = now;
    }
    this.#deliverEvent(room, about, frame);
  }

  /** To every local member but `about`'s sessions (and `skip`), and to the joins waiting for their range. */
  #deliverEvent(room: LocalRoom, about: string, frame: Frame, seq?: number, skip: readonly Session[] = []): void {
    for (const p of room.pending) p.held.push({ kind: 'event', about, frame, seq });
    const own = room.joinedSessionsOf(about);
    room.publishExcept(this.#options.app, frame, skip.length === 0 ? own : [...own, ...skip]);
  }

  /**
   * Some node found that the room's stream lost messages it had delivered, up to
   * `upTo`. Unless every member here already knows of that loss, they are
   * resynced: this node cannot tell which of them saw the lost messages (its
   * live stream may never have carried them), and a rejoin tells each the truth.
   */
  lossReported(name: string, upTo: string): void {
    const room = this.#rooms.get(name);
    // Not settled yet: the room's head, and every join's range, is read after the mark.
    if (room?.lastId === undefined || compareIds(upTo, room.knownLoss) <= 0) return;
    room.knowLoss(upTo);
    this.#resync(room, 'lost', room.sessions());
  }

  /**
   * Whether a typing event of `user` may go out now: one per user and room per
   * interval, and in a room above the list limit one per room a second from
   * this node (every node relays one a second at most anyway).
   */
  claimTyping(name: string, user: string, now: number): boolean {
    const room = this.#rooms.get(name);
    if (room === undefined) return false;
    const occupancy = room.occupancy;
    if (occupancy.crowded(this.#options.listLimit) && now - occupancy.typingSentAt < CROWD_WINDOW_MS) return false;
    const typingAt = (room.typingAt ??= new Map());
    const last = typingAt.get(user);
    if (last !== undefined && now - last < this.#options.typingIntervalMs) return false;
    typingAt.set(user, now);
    occupancy.typingSentAt = now;
    return true;
  }

  /** After a broker outage: reads back what each room missed, and records losses the outage kept from recording. */
  async catchUpAll(): Promise<void> {
    const unmarked = [...this.#unmarked];
    this.#unmarked.clear();
    await Promise.all([
      ...[...this.#rooms.values()].map((room) => this.#catchUp.run(room)),
      ...unmarked.map(([room, upTo]) => this.#markLost(room, upTo)),
    ]);
  }

  /** Closes `sessions` with 1013: each client rejoins its rooms with `since` and learns in `recovered` what it missed. */
  #resync(room: LocalRoom, why: ResyncReason, sessions: Session[]): void {
    const open = sessions.filter((s) => s.open);
    if (open.length === 0) return;
    this.#options.log.warn({ room: room.name, why, members: open.length }, 'members may have missed messages; closing them to rejoin with since');
    this.#options.metrics.memberResyncs.incLabel(why, open.length);
    for (const session of open) session.end(CloseCode.TRY_AGAIN_LATER, 'missed messages; rejoin with since');
  }

  async #markLost(room: string, upTo: string): Promise<void> {
    const { broker, log, track } = this.#options;
    try {
      await track(broker.markLost(room, upTo));
    } catch (err) {
      log.warn({ err, room, upTo }, 'could not record the loss yet; retrying when the broker is back');
      const kept = this.#unmarked.get(room);
      if (kept === undefined || compareIds(upTo, kept) > 0) this.#unmarked.set(room, upTo);
    }
  }

  #fanOut(room: LocalRoom, id: string, frame: Frame): void {
    const { app, metrics } = this.#options;
    room.lastId = id;
    for (const p of room.pending) p.held.push({ kind: 'message', id, frame });
    room.publish(app, frame);
    if (metrics.enabled) metrics.deliveries.inc(room.joinedCount(app));
    // After the publish: a join resumed now subscribes too late to get this message twice.
    for (const p of room.pending) if (p.waitingFor !== undefined && compareIds(id, p.waitingFor) >= 0) p.resume();
  }

  async #readForJoin(name: string, since: string | undefined, reader: string): Promise<JoinRead> {
    const { broker, history, joinReplayLimit, joinHistory } = this.#options;
    if (since !== undefined) return history.since(name, since, joinReplayLimit);
    const messages = await broker.history(name, undefined, Math.max(joinHistory, 1), reader);
    const newest = messages.at(-1)?.id ?? '0-0';
    return { messages: messages.slice(Math.max(0, messages.length - joinHistory)), recovered: undefined, newest };
  }

  /**
   * Subscribes, then reads the newest stored id as the watermark (every message
   * after it will arrive live, and everything up to it is in the stream for
   * joiners) and the loss mark, which every joiner from now on is told of.
   */
  #acquire(name: string): LocalRoom {
    let room = this.#rooms.get(name);
    if (room === undefined) {
      const { broker, channels } = this.#options;
      const created: LocalRoom = new LocalRoom(name, channels.hold(name)
        .then(() => broker.streamHead(name))
        .then(({ newest, lost }) => {
          created.advance(newest);
          created.knowLoss(lost);
        }));
      room = created;
      this.#rooms.set(name, room);
    }
    return room;
  }

  #hold(room: LocalRoom, session: Session): void {
    room.hold(session);
    const rooms = this.#memberships.get(session);
    if (rooms === undefined) this.#memberships.set(session, new Set([room.name]));
    else rooms.add(room.name);
  }

  #forget(session: Session, room: string): void {
    this.#memberships.get(session)?.delete(room);
  }

  /** Counts the user's sessions here down, withdraws their presence when none is left, and the room when it is empty. */
  #release(room: LocalRoom, session: Session): void {
    const { broker, channels, log, track } = this.#options;
    this.#forget(session, room.name);
    const left = room.release(session);
    if (left !== undefined) {
      track(left === 0 ? broker.presence.leave(room.name, session.user) : broker.presence.join(room.name, session.user, { connections: left }).then(() => {}))
        .catch((err: unknown) => log.warn({ err, room: room.name }, 'presence update failed'));
    }
    if (room.holders.size > 0 || this.#rooms.get(room.name) !== room) return;
    this.#rooms.delete(room.name);
    channels.release(room.name);
  }
}

/**
 * `joined.members`: every user while the room is within the list limit; above
 * it the first users by id, the joiner among them (the contract: at most L,
 * the joiner included).
 */
function membersToList({ count, first }: RoomHeadcount, joiner: string, limit: number): string[] {
  if (count <= limit || first.includes(joiner)) return first;
  return [...first.slice(0, limit - 1), joiner].sort(compareUserIds);
}

/**
 * Whether a frame held while a join waited is news to the joiner: not about its
 * own user, not a message or presence change its `joined` already holds, not a
 * count it was already given.
 */
function isNews(held: Held, user: string, position: string, seq: number, told: number): boolean {
  switch (held.kind) {
    case 'message':
      return compareIds(held.id, position) > 0;
    case 'event':
      return held.about !== user && (held.seq === undefined || held.seq > seq);
    case 'occupancy':
      return held.seq > seq && held.count !== told;
  }
}
