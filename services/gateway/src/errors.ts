import { ArchiveUnavailableError } from '@chat/archive';
import {
  BrokerNotReplicatedError, BrokerUnavailableError, ChangeRefusedError, ConversationConflictError, NotAMemberError, PositionAheadError, RestrictedError,
} from '@chat/broker';
import type { ErrorCode } from '@chat/protocol';

/** A refusal the client is told about: its code goes on the wire, its message is for humans. */
export class ChatError extends Error {
  override readonly name = 'ChatError';
  /** A moderator's reason (`banned`, `muted`), sent as the frame's `reason`. */
  reason?: string;
  constructor(readonly code: ErrorCode, message: string, options?: ErrorOptions & { reason?: string }) {
    super(message, options);
    if (options?.reason !== undefined) this.reason = options.reason;
  }
}

const CHANGE_REFUSALS: Record<ChangeRefusedError['reason'], [ErrorCode, string]> = {
  not_found: ['not_found', 'the target is not a message this room still stores'],
  gone: ['gone', 'the target was deleted'],
  not_author: ['forbidden', 'only the author may edit a message, and only the author or a moderator delete it'],
  too_many: ['bad_request', 'a message carries at most 20 different reactions'],
};

/** Maps any failure to what a client may see; unknown errors become `internal` and leak nothing. */
export function toChatError(err: unknown): ChatError {
  if (err instanceof ChatError) return err;
  if (err instanceof BrokerNotReplicatedError) {
    // Others may already have it: say so. A retry with the same key is answered with this id.
    return new ChatError('unavailable', `delivered as ${err.id} but not yet copied to a replica; it may be lost if Redis fails over`, { cause: err });
  }
  if (err instanceof BrokerUnavailableError) {
    return new ChatError('unavailable', 'the message broker is unavailable; retry later', { cause: err });
  }
  if (err instanceof ChangeRefusedError) {
    const [code, message] = CHANGE_REFUSALS[err.reason];
    return new ChatError(code, message, { cause: err });
  }
  if (err instanceof RestrictedError) {
    const message = err.kind === 'ban' ? 'you are banned from this room' : 'you are muted in this room';
    return new ChatError(err.kind === 'ban' ? 'banned' : 'muted', message, { cause: err, reason: err.reason });
  }
  if (err instanceof NotAMemberError) return new ChatError('forbidden', `you are not a member of "${err.room}"`, { cause: err });
  if (err instanceof PositionAheadError) return new ChatError('bad_request', `"id" is after the newest message of "${err.room}"`, { cause: err });
  if (err instanceof ConversationConflictError) return new ChatError('forbidden', 'that conversation\'s room is used otherwise', { cause: err });
  if (err instanceof ArchiveUnavailableError) {
    return new ChatError('unavailable', 'the history archive is unavailable; retry later', { cause: err });
  }
  return new ChatError('internal', 'internal error', { cause: err });
}
