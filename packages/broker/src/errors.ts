import type { ChangeRefusalReason } from './changes.js';
/** The backing store cannot be reached or did not answer in time; retrying later may work. */
export class BrokerUnavailableError extends Error {
  override readonly name: string = 'BrokerUnavailableError';
}

/** The backing store answered with an error that retrying will not fix. */
export class BrokerCommandError extends Error {
  override readonly name = 'BrokerCommandError';
}

/**
 * An append reached the primary (and its subscribers) but not the required
 * replicas in time: it may be lost if the primary fails now.
 */
export class BrokerNotReplicatedError extends BrokerUnavailableError {
  override readonly name = 'BrokerNotReplicatedError';
  constructor(readonly id: string, message: string) {
    super(message);
  }
}

/** The store's answer that the request is not allowed as asked: not a failure, so nothing to retry. */
export class BrokerRefusal extends Error {}

/** The user is not a member of the room (a members-only room's, or an open room, which has none): nothing was stored, written or delivered. */
export class NotAMemberError extends BrokerRefusal {
  override readonly name = 'NotAMemberError';
  constructor(readonly room: string, readonly user: string) {
    super(`"${user}" is not a member of "${room}"`);
  }
}

/** A direct conversation's room is already used otherwise (another pair, or a members-only room of the application's). */
export class ConversationConflictError extends BrokerRefusal {
  override readonly name = 'ConversationConflictError';
}

/** A read position after the room's newest message: nothing was moved. */
export class PositionAheadError extends BrokerRefusal {
  override readonly name = 'PositionAheadError';
  constructor(readonly room: string, readonly newest: string) {
    super(`no message of "${room}" is that new (the newest is ${newest})`);
  }
}

/** A change of a message was refused (see MessageChanges): nothing was stored. */
export class ChangeRefusedError extends BrokerRefusal {
  override readonly name = 'ChangeRefusedError';
  constructor(readonly reason: ChangeRefusalReason) {
    super(`change refused: ${reason}`);
  }
}

/** A moderator banned or muted the user in the room (see Moderation): nothing was stored or delivered. */
export class RestrictedError extends BrokerRefusal {
  override readonly name = 'RestrictedError';
  constructor(readonly kind: 'ban' | 'mute', readonly reason: string) {
    super(kind === 'ban' ? `banned: ${reason}` : `muted: ${reason}`);
  }
}
