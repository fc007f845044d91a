import type { MemberPage } from './presence.js';

/**
 * Stored membership of members-only rooms, apart from presence (who is
 * connected): it lasts across connections, restarts and failovers. Open rooms
 * have none and behave as before. A room's members live beside its stream, on
 * its slot; each user also has an index of their rooms on their own slot.
 *
 * One change writes two slots: the room's record, which decides, and each
 * user's index, which only says where to look. An add lists first and a removal
 * unlists last, so in between (or after a crash in between) an index can name a
 * room that does not admit the user, never miss one that does. Readers skip
 * such a room and `unlist` drops it once the grace has passed.
 *
 * Appends and presence ask the same record in the same atomic step: a
 * non-member's message is refused (NotAMemberError) and a non-member never
 * becomes present.
 */
export interface Membership {
  /**
   * Adds members, making the room members-only (for good). A new member's read
   * position starts at the room's newest message. Resolves with the users who
   * were not members before.
   */
  add(room: string, users: readonly string[]): Promise<string[]>;

  /** Removes members and their read positions; resolves with the users who were members. */
  remove(room: string, users: readonly string[]): Promise<string[]>;

  /**
   * Makes `room` the direct conversation of `a` and `b`: on first use a
   * members-only room of exactly the two, afterwards the same room, whoever
   * asks and however often, racing calls included. Rejects with
   * ConversationConflictError when the room is already something else.
   */
  openPair(room: string, a: string, b: string): Promise<void>;

  /** What `user` may do in `room`: `open` room, `member`, or `outsider` of a members-only room. */
  access(room: string, user: string): Promise<RoomAccess>;

  /** Stored members by id after `after` (exclusive), up to `limit`; `count` is all of them. */
  members(room: string, after: string | undefined, limit: number): Promise<MemberPage>;

  /** The user's members-only rooms, from their index: possibly with some that no longer (or do not yet) admit them. */
  roomsOf(user: string): Promise<string[]>;

  /**
   * Drops from `user`'s index those of `rooms` listed longer than the grace
   * ago (a minute): the caller found they do not admit the user, so they are
   * what a crash between an add's or a removal's two writes left behind.
   */
  unlist(user: string, rooms: readonly string[]): Promise<void>;
}

export type RoomAccess = 'open' | 'member' | 'outsider';

/** The name of a direct conversation's pair, the same in either order. */
export function pairOf(a: string, b: string): string {
  return a < b ? `${a}|${b}` : `${b}|${a}`;
}
