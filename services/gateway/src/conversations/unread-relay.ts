import { unreadOf, type CountedMessage, type Membership, type ReadPosition, type ReadPositions } from '@chat/broker';
import { compareIds, encodeUnread, messageFrameHead } from '@chat/protocol';
import type { Logger } from '../logger.js';
import type { RoomChannels } from '../rooms/room-channels.js';
import type { Session } from '../session.js';

export interface UnreadRelayOptions {
  membership: Membership;
  reads: ReadPositions;
  channels: RoomChannels;
  /** The user's connections on this node. */
  sessionsOf(user: string): Iterable<Session>;
  /** Counts the unread frames written. */
  written: { inc(n?: number): void };
  log: Logger;
}

/** An unread frame built for one read position. */
interface BuiltFrame {
  number: number;
  frame: string;
}

/** A local member's read position, once known here (loaded when the room's first message needs it). */
type Members = Map<string, ReadPosition | undefined>;

const decoder = new TextDecoder();

/**
 * Tells every connection of a members-only room's members their unread count
 * as it changes, whether or not they joined the room. This node listens to the
 * room's channel while one of its users is a member: a new message carries its
 * number, and the number minus a member's read position is their count. So a
 * message costs one publish whatever the room's size, and each node writes one
 * frame per local member, as it would deliver the message to joined ones.
 * Reads on other devices arrive as user commands (see UserCommands). A delete
 * of a counted message arrives like a message, with the deleted one's number:
 * members who had not read it get their lower count.
 */
export class UnreadRelay {
  /** room -> its local members and their read positions */
  readonly #rooms = new Map<string, Members>();
  /** local user -> their members-only rooms; the set is made when the user's first connection arrives */
  readonly #roomsOf = new Map<string, Set<string>>();
  /** room -> its newest message number seen here */
  readonly #totals = new Map<string, number>();
  /** room -> its newest message's frame, for the counts told when a position comes in */
  readonly #lastFrames = new Map<string, string>();
  /** room -> local members whose position is being read; they are told once it is in */
  readonly #loading = new Map<string, Set<string>>();
  /**
   * room -> numbers of its deleted messages heard of here (live, and read with positions): a set,
   * so hearing of one twice, live and in a read, takes it off once.
   */
  readonly #deleted = new Map<string, Set<number>>();

  constructor(private readonly o: UnreadRelayOptions) {}

  /** The user's first connection here: resolves once their rooms' counts reach it. */
  async userArrived(user: string): Promise<void> {
    const rooms = new Set<string>();
    this.#roomsOf.set(user, rooms);
    const names = await this.o.membership.roomsOf(user);
    if (this.#roomsOf.get(user) !== rooms) return; // gone meanwhile
    await Promise.all(names.map((room) => this.#watch(user, room, rooms)));
  }

  /** The user's last connection here closed. */
  userLeft(user: string): void {
    const rooms = this.#roomsOf.get(user);
    if (rooms === undefined) return;
    this.#roomsOf.delete(user);
    for (const room of rooms) this.#unwatch(user, room);
  }

  /**
   * `user` became a member of `room` (on some node): counts start reaching their
   * connections here, and they are told the count now, which also covers a message
   * posted between the change and this node listening to the room.
   */
  async memberAdded(user: string, room: string): Promise<void> {
    const rooms = this.#roomsOf.get(user);
    if (rooms === undefined) return;
    await this.#watch(user, room, rooms);
    try {
      const state = await this.o.reads.state(room, user);
      const members = this.#rooms.get(room);
      if (state === undefined || members?.has(user) !== true) return;
      const known = members.get(user);
      const at = known !== undefined && compareIds(known.id, state.read.id) >= 0 ? known : state.read;
      members.set(user, at);
      this.#hearDeleted(room, state.deleted);
      const last = state.last === null ? undefined : messageFrameHead(room) + state.last.id + state.last.body;
      if (last !== undefined && !this.#lastFrames.has(room)) this.#lastFrames.set(room, last);
      this.#tell(user, room, at, this.#raiseTotal(room, state.total), this.#lastFrames.get(room));
    } catch (err) {
      this.o.log.warn({ err, room }, 'read position unavailable; the count follows with the next message');
    }
  }

  memberRemoved(user: string, room: string): void {
    if (this.#roomsOf.get(user)?.delete(room)) this.#unwatch(user, room);
  }

  /** A members-only room's message: a count for every local member (none for the sender, whose position moved to it). */
  messageArrived(room: string, id: string, frame: Uint8Array, { number, user: sender, deletes }: CountedMessage): void {
    const members = this.#rooms.get(room);
    if (members === undefined) return;
    if (deletes) return this.#messageDeleted(room, members, number);
    const total = this.#raiseTotal(room, number);
    const last = decoder.decode(frame);
    this.#lastFrames.set(room, last);
    const loading = this.#loading.get(room);
    // Members at one read position get the same frame: in a big room most share a few, so it is built a few times, not per member.
    const frames = members.size > 1 ? new Map<string, BuiltFrame>() : undefined;
    let unknown: string[] | undefined;
    for (const [user, at] of members) {
      if (user === sender) members.set(user, { id, number });
      else if (at === undefined) {
        if (loading?.has(user) !== true) (unknown ??= []).push(user);
        continue;
      }
      this.#tell(user, room, members.get(user)!, total, last, undefined, frames);
    }
    if (unknown !== undefined) void this.#load(room, unknown);
  }

  /**
   * A member's read position moved (a `read` on any device): every local connection of theirs but
   * `except` is told. Positions only move forward, so an older one arriving late changes nothing here.
   */
  readMoved(user: string, room: string, read: ReadPosition, total: number, except?: string): void {
    const { at, newest } = this.#merge(user, room, read, total);
    this.#tell(user, room, at, newest, undefined, except);
  }

  /** Members who had not read the deleted message get their count without it; the room's preview is no longer it. */
  #messageDeleted(room: string, members: Members, number: number): void {
    if (!this.#hearDeleted(room, [number])) return;
    this.#lastFrames.delete(room);
    const total = this.#totals.get(room);
    if (total === undefined || total < number) return void this.#load(room, [...members.keys()]); // no count known here yet: read them
    for (const [user, at] of members) if (at !== undefined && at.number < number) this.#tell(user, room, at, total, undefined);
  }

  /** Records deleted message numbers of a watched room; true when one was new here. */
  #hearDeleted(room: string, numbers: readonly number[]): boolean {
    if (numbers.length === 0 || !this.#rooms.has(room)) return false;
    let known = this.#deleted.get(room);
    if (known === undefined) this.#deleted.set(room, (known = new Set()));
    const before = known.size;
    for (const n of numbers) known.add(n);
    return known.size > before;
  }

  /** A member's count: messages after their position, less the deleted ones heard of. */
  #count(room: string, at: ReadPosition, total: number): number {
    let count = total - at.number;
    const deleted = this.#deleted.get(room);
    if (deleted !== undefined) for (const n of deleted) if (n > at.number && n <= total) count--;
    return Math.max(0, count);
  }

  /**
   * What a connection's own `read` is answered with: the read's result merged
   * with what this node already knows. A message that arrived here after the
   * read ran in Redis, and was already counted to this connection, must not be
   * taken back by the answer (its other connections hear of the read by readMoved).
   */
  answerRead(user: string, room: string, read: ReadPosition, total: number, deleted: number[]): { count: number; read: string } {
    const { at, newest } = this.#merge(user, room, read, total);
    this.#hearDeleted(room, deleted);
    if (!this.#rooms.has(room)) return { count: unreadOf({ read: at, total: newest, deleted }), read: at.id };
    return { count: this.#count(room, at, newest), read: at.id };
  }

  /** The newer of a known position and `read`, and the higher of the known total and `total`; kept if the room is watched. */
  #merge(user: string, room: string, read: ReadPosition, total: number): { at: ReadPosition; newest: number } {
    const members = this.#rooms.get(room);
    const known = members?.get(user);
    const at = known !== undefined && compareIds(known.id, read.id) >= 0 ? known : read;
    if (members?.has(user)) members.set(user, at);
    return { at, newest: members === undefined ? total : this.#raiseTotal(room, total) };
  }

  /** After a broker outage positions may have moved unheard: they are read again when next needed. */
  forgetPositions(): void {
    for (const members of this.#rooms.values()) for (const user of members.keys()) members.set(user, undefined);
  }

  async #watch(user: string, room: string, rooms: Set<string>): Promise<void> {
    if (rooms.has(room)) return;
    rooms.add(room);
    let members = this.#rooms.get(room);
    if (members === undefined) this.#rooms.set(room, (members = new Map()));
    members.set(user, undefined);
    if (members.size === 1) {
      await this.o.channels.hold(room).catch((err: unknown) => this.o.log.warn({ err, room }, 'no unread counts for this room until the broker is back'));
    }
  }

  #unwatch(user: string, room: string): void {
    const members = this.#rooms.get(room);
    if (members === undefined || !members.delete(user) || members.size > 0) return;
    this.#rooms.delete(room);
    this.#totals.delete(room);
    this.#lastFrames.delete(room);
    this.#deleted.delete(room);
    this.o.channels.release(room);
  }

  /** Reads positions not known here yet, then tells each of those members their count as of the newest message. */
  async #load(room: string, users: string[]): Promise<void> {
    let loading = this.#loading.get(room);
    if (loading === undefined) this.#loading.set(room, (loading = new Set()));
    for (const user of users) loading.add(user);
    try {
      const positions = await this.o.reads.positions(room, users);
      const lowest = Math.min(...[...positions.values()].map((p) => p.number));
      if (Number.isFinite(lowest)) this.#hearDeleted(room, await this.o.reads.deletedAfter(room, lowest));
      const members = this.#rooms.get(room);
      if (members === undefined) return;
      for (const [user, at] of positions) {
        if (!members.has(user)) continue;
        const known = members.get(user);
        const newest = known !== undefined && compareIds(known.id, at.id) >= 0 ? known : at;
        members.set(user, newest);
        this.#tell(user, room, newest, this.#totals.get(room) ?? 0, this.#lastFrames.get(room));
      }
    } catch (err) {
      this.o.log.warn({ err, room }, 'read positions unavailable; unread counts follow with the next message');
    } finally {
      for (const user of users) loading.delete(user);
      if (loading.size === 0 && this.#loading.get(room) === loading) this.#loading.delete(room);
    }
  }

  #raiseTotal(room: string, total: number): number {
    const known = this.#totals.get(room) ?? 0;
    if (total <= known) return known;
    this.#totals.set(room, total);
    return total;
  }

  /** `frames`: those already built for this message, by read position. */
  #tell(user: string, room: string, at: ReadPosition, total: number, last: string | undefined, except?: string, frames?: Map<string, BuiltFrame>): void {
    const built = frames?.get(at.id);
    let frame = built?.number === at.number ? built.frame : undefined;
    if (frame === undefined) {
      frame = encodeUnread(room, this.#count(room, at, total), at.id, last, undefined);
      frames?.set(at.id, { number: at.number, frame });
    }
    let written = 0;
    for (const session of this.o.sessionsOf(user)) {
      if (session.id === except) continue;
      session.send(frame);
      written++;
    }
    this.o.written.inc(written);
  }
}
