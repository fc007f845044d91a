import type { StoredMessage } from './broker.js';

/**
 * Where each member of a members-only room has read to, and their unread
 * count: the room's message number minus the number of their read position,
 * less the deleted messages after it (counters, so reading a count does not
 * depend on the room's size and trimming never changes it).
 * A position only moves forward; a member's own message moves theirs to it.
 */
export interface ReadPositions {
  /**
   * Moves `user`'s read position in `room` forward to `id` (an older id changes
   * nothing) and resolves with where it is now. Rejects with NotAMemberError
   * for a non-member and PositionAheadError for an id after the room's newest
   * message; either way nothing is written.
   */
  markRead(room: string, user: string, id: string): Promise<ReadState & { moved: boolean }>;

  /** The read positions of `users` in `room` (a non-member: absent). */
  positions(room: string, users: readonly string[]): Promise<Map<string, ReadPosition>>;

  /**
   * When each room's newest message was posted, in microseconds (0 for none): what
   * orders a room list (ids of two rooms posted in one millisecond do not).
   */
  activity(rooms: readonly string[]): Promise<number[]>;

  /** `user`'s state in `room`, for a room list entry; undefined when not a member. */
  state(room: string, user: string): Promise<ConversationState | undefined>;

  /** The numbers of the room's deleted messages after `number`: no count includes them. */
  deletedAfter(room: string, number: number): Promise<number[]>;
}

export interface ReadPosition {
  /** The id read up to. */
  id: string;
  /** The room's message number at that id. */
  number: number;
}

export interface ReadState {
  read: ReadPosition;
  /** The room's message number now. */
  total: number;
  /** The numbers of deleted messages after the read position. */
  deleted: number[];
}

export interface ConversationState extends ReadState {
  /** The room's newest message, in its current version. */
  last: StoredMessage | null;
  /** "a|b" for a direct conversation. */
  pair?: string;
}

/** A member's unread count. */
export function unreadOf({ read, total, deleted }: ReadState): number {
  return Math.max(0, total - read.number - deleted.filter((n) => n > read.number && n <= total).length);
}
