import type { Broker, Membership } from '@chat/broker';
import {
  DM_FRAME_HEAD,
  HISTORY_DEFAULT_LIMIT,
  MEMBERS_DEFAULT_LIMIT,
  dmFrameBody,
  encodeAck,
  encodeError,
  encodeHistory,
  encodeLeft,
  encodeMembers,
  encodePong,
  encodeTyping,
  type ClientFrame,
  type DirectSendFrame,
  type HistoryRequestFrame,
  type JoinFrame,
  type MembersRequestFrame,
  type ReadFrame,
  type SendFrame,
} from '@chat/protocol';
import { allowedBy } from './auth.js';
import type { ChangeCommands } from './changes/commands.js';
import type { Config } from './config.js';
import type { ConversationCommands } from './conversations/commands.js';
import { isDirectRoom } from './conversations/direct-rooms.js';
import { ChatError, toChatError } from './errors.js';
import type { RoomHistory } from './history.js';
import type { InFlight } from './in-flight.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';
import { postRoomMessage, scopedKey } from './room-messages.js';
import type { RoomRegistry } from './rooms/registry.js';
import type { Session } from './session.js';

export interface CommandDeps {
  config: Config;
  broker: Broker;
  membership: Membership;
  conversations: ConversationCommands;
  changes: ChangeCommands;
  history: RoomHistory;
  rooms: RoomRegistry;
  inFlight: InFlight;
  log: Logger;
  metrics: Metrics;
  /** True once shutdown closes the last sockets: new work is refused so in-flight work can finish. */
  refusingWork(): boolean;
  /** Undefined when conversations can be used; else resolves once they can (see ConversationRestorer). */
  conversationsReady(): Promise<void> | undefined;
}

/** Carries out decoded client frames. Every refusal becomes an `error` frame, never an exception. */
export class CommandHandler {
  constructor(private readonly deps: CommandDeps) {}

  handle(session: Session, frame: ClientFrame): void {
    const waiting = ROOM_FRAMES.has(frame.type) ? this.deps.conversationsReady() : undefined;
    if (waiting === undefined) return this.#dispatch(session, frame);
    // In order: a session's frames that wait resume in the order they came.
    this.#run(session, frame.ref, waiting.then(() => this.#dispatch(session, frame)));
  }

  #dispatch(session: Session, frame: ClientFrame): void {
    switch (frame.type) {
      case 'join':
        return this.#run(session, frame.ref, session.serialize(frame.room, () => this.#join(session, frame)));
      case 'leave':
        return this.#run(session, frame.ref, session.serialize(frame.room, async () => this.#leave(session, frame.room, frame.ref)));
      case 'send':
        return this.#run(session, frame.ref, this.#send(session, frame));
      case 'history':
        return this.#run(session, frame.ref, this.#history(session, frame));
      case 'ping':
        return session.send(encodePong(frame.ref, Date.now()));
      case 'typing':
        return this.#run(session, frame.ref, this.#typing(session, frame.room));
      case 'dm':
        return this.#run(session, frame.ref, this.#direct(session, frame));
      case 'members':
        return this.#run(session, frame.ref, this.#members(session, frame));
      case 'open':
        return this.#run(session, frame.ref, this.deps.conversations.open(session, frame));
      case 'read':
        return this.#run(session, frame.ref, this.#read(session, frame));
      case 'rooms':
        return this.#run(session, frame.ref, this.deps.conversations.rooms(session, frame));
      case 'edit':
        return this.#run(session, frame.ref, this.#change(session, frame, () => this.deps.changes.edit(session, frame)));
      case 'delete':
        return this.#run(session, frame.ref, this.#change(session, frame, () => this.deps.changes.delete(session, frame)));
      case 'react':
      case 'unreact':
        return this.#run(session, frame.ref, this.#change(session, frame, () => this.deps.changes.react(session, frame)));
      default:
        return assertNever(frame);
    }
  }

  /**
   * A join the application made for the user (server API): as the client's own
   * join without `ref`, and without the token's room check (the backend decided);
   * a failure reaches the client as an `error` frame.
   */
  serverJoin(session: Session, room: string): void {
    this.#run(session, undefined, session.serialize(room, async () => {
      if (!this.deps.rooms.isIn(session, room)) await this.#join(session, { type: 'join', room }, false);
    }));
  }

  /** A leave the application made for the user: `left` without `ref`; nothing if the connection is not in the room. */
  serverLeave(session: Session, room: string): void {
    this.#run(session, undefined, session.serialize(room, async () => {
      if (this.deps.rooms.isIn(session, room)) this.#leave(session, room, undefined);
    }));
  }

  /**
   * The user was removed from a members-only room: a connection in it leaves it
   * (`left`), and one that never joined it gets `left` too, so that its room list
   * and unread total drop the room at once.
   */
  memberRemoved(session: Session, room: string): void {
    this.#run(session, undefined, session.serialize(room, async () => {
      if (this.deps.rooms.isIn(session, room)) this.#leave(session, room, undefined);
      else session.send(encodeLeft(room, undefined));
    }));
  }

  /** Answers with an `error` frame; unknown failures are logged and reported as `internal`. */
  reject(session: Session, err: unknown, ref: string | undefined): void {
    const error = toChatError(err);
    if (error.code === 'internal') session.log.error({ err }, 'command failed');
    this.deps.metrics.framesRejected.incLabel(error.code);
    session.send(encodeError(error.code, error.message, ref, error.reason));
  }

  #run(session: Session, ref: string | undefined, operation: Promise<void>): void {
    operation.catch((err: unknown) => this.reject(session, err, ref));
  }

  async #join(session: Session, { room, since, ref }: JoinFrame, authorize = true): Promise<void> {
    if (authorize) this.#authorize(session, room);
    const { config, rooms, membership } = this.deps;
    // A members-only room refuses a non-member as the join writes presence; a direct
    // conversation's name is also refused before `open` made it one, so nobody can claim it first.
    if (isDirectRoom(room) && await membership.access(room, session.user) !== 'member') {
      throw new ChatError('forbidden', `"${room}" is a direct conversation you are not part of`);
    }
    if (!rooms.isIn(session, room) && rooms.countOf(session) >= config.maxRoomsPerConnection) {
      throw new ChatError('forbidden', `a connection may join at most ${config.maxRoomsPerConnection} rooms`);
    }
    this.#refuseWhileClosing(session);
    await rooms.join(session, room, since, ref); // the room counts as joined from its first, synchronous step
  }

  #leave(session: Session, room: string, ref: string | undefined): void {
    if (!this.deps.rooms.isIn(session, room)) throw notJoined(room);
    this.deps.rooms.leave(session, room);
    session.send(encodeLeft(room, ref));
  }

  async #send(session: Session, { room, text, key, ref }: SendFrame): Promise<void> {
    this.#authorize(session, room);
    if (!this.deps.rooms.isIn(session, room)) await this.#notJoined(session, room);
    this.#refuseWhileClosing(session);
    session.beginSend();
    try {
      const { id, ts } = await postRoomMessage(this.deps, { room, user: session.user, text, key });
      session.send(encodeAck(ref, id, ts));
    } finally {
      session.endSend();
    }
  }

  /** A change of a message needs what a send needs: the room allowed and joined, and the node not closing. */
  async #change(session: Session, { room }: { room: string }, change: () => Promise<void>): Promise<void> {
    this.#authorize(session, room);
    if (!this.deps.rooms.isIn(session, room)) await this.#notJoined(session, room);
    this.#refuseWhileClosing(session);
    await change();
  }

  /** Coalesced to one event per user and room per TYPING_MIN_INTERVAL_MS: clients send one per keystroke. */
  async #typing(session: Session, room: string): Promise<void> {
    if (!this.deps.rooms.isIn(session, room)) await this.#notJoined(session, room);
    if (!this.deps.rooms.claimTyping(room, session.user, Date.now())) return;
    await this.deps.broker.publishRoomEvent(room, session.user, encodeTyping(room, session.user));
  }

  /**
   * To every connection of the recipient, then a copy to every connection of the
   * sender. A repeat of one already delivered (same key) is only acknowledged again.
   */
  async #direct(session: Session, frame: DirectSendFrame): Promise<void> {
    if (!this.deps.config.dmsEnabled) throw new ChatError('forbidden', 'direct messages are disabled on this service');
    if (!allowedBy(session.identity.dm, frame.to)) throw new ChatError('forbidden', `your token does not allow direct messages to "${frame.to}"`);
    this.#refuseWhileClosing(session);
    session.beginSend();
    try {
      await this.#deliverDirect(session, frame);
    } finally {
      session.endSend();
    }
  }

  async #deliverDirect(session: Session, { to, text, key, ref }: DirectSendFrame): Promise<void> {
    const { broker, inFlight } = this.deps;
    const sentAt = Date.now();
    const body = dmFrameBody(session.user, to, text, sentAt);
    const idempotencyKey = key === undefined ? undefined : scopedKey(session.user, key);
    const { id, ts, receivers, repeat } = await inFlight.track(broker.sendDirect({ to, head: DM_FRAME_HEAD, body, ts: sentAt, idempotencyKey }));
    if (repeat) {
      this.deps.metrics.repeatedSends.inc();
      return session.send(encodeAck(ref, id, ts));
    }
    if (receivers === 0) throw new ChatError('offline', `"${to}" has no open connection`);
    this.deps.metrics.directMessages.inc();
    if (to !== session.user) {
      // The message reached its recipient: a failed copy to the sender's tabs must not turn that into an error.
      await inFlight.track(broker.publishToUser(session.user, DM_FRAME_HEAD + id + body))
        .catch((err: unknown) => session.log.warn({ err }, 'copy of a direct message to its sender failed'));
    }
    session.send(encodeAck(ref, id, ts));
  }

  async #history(session: Session, { room, before, limit, ref }: HistoryRequestFrame): Promise<void> {
    this.#authorize(session, room);
    if (!this.deps.rooms.isIn(session, room)) await this.#notJoined(session, room);
    const stored = await this.deps.history.page(room, before, limit ?? HISTORY_DEFAULT_LIMIT, session.user);
    const head = this.deps.rooms.head(room);
    session.send(encodeHistory(room, ref, stored.map((m) => head + m.id + m.body)));
  }

  /** A page of the room's users by id: one read of at most `limit` names, whatever the room's size. */
  async #members(session: Session, { room, after, limit, ref }: MembersRequestFrame): Promise<void> {
    this.#authorize(session, room);
    if (!this.deps.rooms.isIn(session, room)) await this.#notJoined(session, room);
    const page = await this.deps.inFlight.track(this.deps.broker.presence.members(room, after, limit ?? MEMBERS_DEFAULT_LIMIT));
    session.send(encodeMembers(room, ref, page.users, page.count, page.next));
  }

  /** `read` needs membership, not a join: a member marks a room read from the room list. */
  async #read(session: Session, frame: ReadFrame): Promise<void> {
    this.#authorize(session, frame.room);
    await this.deps.conversations.read(session, frame);
  }

  /**
   * Refuses a frame for a room the connection has not joined: `forbidden` when
   * the room is members-only and the user not a member (so the answer does not
   * depend on whether they tried to join), else `not_joined`. Only this refusal
   * asks the broker; a joined room's frames never do.
   */
  async #notJoined(session: Session, room: string): Promise<never> {
    const access = await this.deps.inFlight.track(this.deps.membership.access(room, session.user)).catch(() => 'open');
    if (access === 'outsider') throw new ChatError('forbidden', `"${room}" is members-only and you are not a member`);
    throw notJoined(room);
  }

  /** The token's `rooms` claim decides which rooms a user may join, read and post to. */
  #authorize(session: Session, room: string): void {
    if (!allowedBy(session.identity.rooms, room)) throw new ChatError('forbidden', `your token does not allow room "${room}"`);
  }

  #refuseWhileClosing(session: Session): void {
    if (session.leaving || this.deps.refusingWork()) throw new ChatError('unavailable', 'this node is shutting down; reconnect');
  }
}

/**
 * Frames whose answer depends on who may use a room: they wait while
 * conversations are checked or restored, since until then a members-only room
 * Redis lost looks open.
 */
const ROOM_FRAMES: ReadonlySet<ClientFrame['type']> = new Set([
  'join', 'leave', 'send', 'typing', 'history', 'members', 'open', 'read', 'rooms', 'edit', 'delete', 'react', 'unreact',
]);

function notJoined(room: string): ChatError {
  return new ChatError('not_joined', `not joined to "${room}"`);
}

function assertNever(frame: never): never {
  throw new Error(`unhandled frame ${JSON.stringify(frame)}`);
}
