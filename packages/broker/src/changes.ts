/**
 * Changes of stored messages: edits, deletes, reactions. A change is stored as
 * an entry of the room's stream with an id of its own, in the same atomic step
 * that checks it, so it reaches subscribers, `after()` readers and the archive
 * in the room's one order, exactly like a message (see Broker.append). Readers
 * of pages (Broker.history, Broker.after) get each message in its current
 * version: edited text, a tombstone for a deleted one, reaction counts.
 *
 * A non-member of a members-only room is refused with NotAMemberError, a banned
 * or muted user (see Moderation) with RestrictedError, anything else with
 * ChangeRefusedError; nothing is stored then.
 * Only messages the stream still holds can change: a trimmed one is
 * `not_found`. A delete removes the message, and every entry holding an
 * earlier text of it, from the stream: a tombstone takes its place in pages.
 */
export interface MessageChanges {
  /** Replaces the text of the author's own message. */
  edit(change: EditChange): Promise<ChangeResult>;

  /** Deletes a message: the author's own, or anyone's for a moderator. */
  delete(change: DeleteChange): Promise<ChangeResult>;

  /**
   * Adds or removes one user's reaction: a set per message and reaction, so
   * racing adds and removes leave the count equal to its reactors. A change
   * that finds the set as asked stores nothing (`unchanged`).
   */
  react(change: ReactionChange): Promise<ChangeResult>;

  /**
   * Deletes every message of `user` the stream holds in each of `rooms` (every
   * room when absent), with the text of their edits, as a moderator's deletes
   * by `actor`; resolves with what it deleted, for the archive's tombstones.
   */
  erase(request: EraseRequest): Promise<ErasedMessage[]>;
}

interface ChangeBase {
  room: string;
  /** Who makes the change. */
  user: string;
  /** The id of the message it changes. */
  target: string;
  /** Time of acceptance (ms). */
  ts: number;
  /** Bytes of the change's frame before its id (changeFrameHead). */
  head: string;
  /** The newest id the node delivered in the room (see AppendRequest.lastDelivered). */
  lastDelivered?: string;
}

export interface EditChange extends ChangeBase {
  /** The new text, as a JSON string literal. */
  text: string;
  /** Bytes of the change's frame after its id. */
  body: string;
  /** Bytes of a message frame before its id, for the message.updated event. */
  messageHead: string;
}

export interface DeleteChange extends ChangeBase {
  body: string;
  /** The token makes the user a moderator of the room (a stored moderator needs nothing). */
  moderator: boolean;
}

export interface ReactionChange extends ChangeBase {
  reaction: string;
  add: boolean;
}

export interface ChangeResult {
  /** The change's id; the target's when `unchanged`. */
  id: string;
  /** A reaction that was already as asked: nothing stored, nothing published. */
  unchanged: boolean;
  /** A reaction's count after the change. */
  count?: number;
}

export interface EraseRequest {
  user: string;
  /** Absent: every room. */
  rooms?: readonly string[];
  /** Who the delete frames name. */
  actor: string;
  ts: number;
  /** The delete frame's head in a room (changeFrameHead). */
  head(room: string): string;
}

export interface ErasedMessage {
  room: string;
  id: string;
  author: string;
  sentAt: number;
}

/** Why a change was refused; nothing was stored. */
export type ChangeRefusalReason = 'not_found' | 'gone' | 'not_author' | 'too_many';
