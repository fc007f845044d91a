import type { Broker, Membership, ReadPositions } from '@chat/broker';
import { ROOMS_DEFAULT_LIMIT, encodeOpened, encodeRooms, encodeUnread, type OpenFrame, type ReadFrame, type RoomsRequestFrame } from '@chat/protocol';
import { allowedBy } from '../auth.js';
import { ChatError } from '../errors.js';
import type { InFlight } from '../in-flight.js';
import type { Logger } from '../logger.js';
import type { Session } from '../session.js';
import { encodeUserCommand } from '../user-command.js';
import { directRoomName } from './direct-rooms.js';
import { listRooms } from './room-list.js';
import type { UnreadRelay } from './unread-relay.js';

export interface ConversationDeps {
  broker: Broker;
  membership: Membership;
  reads: ReadPositions;
  unread: UnreadRelay;
  inFlight: InFlight;
  log: Logger;
}

/** `open`, `read` and `rooms` (v1.1, "Conversations"). */
export class ConversationCommands {
  constructor(private readonly deps: ConversationDeps) {}

  /** The pair's room, made members-only with exactly the two on first use; both users' nodes start counting it. */
  async open(session: Session, { with: other, ref }: OpenFrame): Promise<void> {
    const { user, identity } = session;
    if (other === user) throw new ChatError('bad_request', 'a direct conversation needs another user');
    if (!allowedBy(identity.dm, other)) throw new ChatError('forbidden', `your token does not allow conversations with "${other}"`);
    const room = directRoomName(user, other);
    if (!allowedBy(identity.rooms, room)) throw new ChatError('forbidden', `your token does not allow room "${room}"`);
    const { broker, membership, inFlight } = this.deps;
    await inFlight.track(membership.openPair(room, user, other));
    session.send(encodeOpened(room, other, ref));
    // Each time, not only the first: cheap, and it repairs a node that missed the first.
    await Promise.all([user, other].map((u) => inFlight.track(broker.sendUserCommand(u, encodeUserCommand({ op: 'member', room })))))
      .catch((err: unknown) => session.log.warn({ err, room }, 'could not tell every node of the new conversation yet'));
  }

  /**
   * Moves the read position: the sender's connection is answered with its `ref`,
   * then every other connection of the user, on any node, gets the same state.
   */
  async read(session: Session, { room, id, ref }: ReadFrame): Promise<void> {
    const { broker, reads, unread, inFlight } = this.deps;
    const state = await inFlight.track(reads.markRead(room, session.user, id));
    const answer = unread.answerRead(session.user, room, state.read, state.total, state.deleted);
    session.send(encodeUnread(room, answer.count, answer.read, undefined, ref));
    const command = encodeUserCommand({ op: 'read', room, id: state.read.id, number: state.read.number, total: state.total, except: session.id });
    await inFlight.track(broker.sendUserCommand(session.user, command))
      .catch((err: unknown) => session.log.warn({ err, room }, 'could not tell the user\'s other connections of a read'));
  }

  async rooms(session: Session, { before, limit, ref }: RoomsRequestFrame): Promise<void> {
    const page = await this.deps.inFlight.track(listRooms(this.deps, session.user, before, limit ?? ROOMS_DEFAULT_LIMIT));
    session.send(encodeRooms(ref, page.rooms, page.next));
  }
}
