import type { ErrorCode } from './codes.js';

// ---- client -> server -------------------------------------------------------

export interface JoinFrame { type: 'join'; room: string; since?: string; ref?: string }
export interface LeaveFrame { type: 'leave'; room: string; ref?: string }
/**
 * `key` (an addition to the contract): an idempotency key. The same user sending
 * the same key to the same room (for `dm`: the same recipient) within the
 * service's idempotency window stores and delivers the message once; every
 * repeat gets the first message's ack.
 */
export interface SendFrame { type: 'send'; room: string; text: string; key?: string; ref?: string }
export interface DirectSendFrame { type: 'dm'; to: string; text: string; key?: string; ref?: string }
export interface TypingFrame { type: 'typing'; room: string; ref?: string }
export interface HistoryRequestFrame { type: 'history'; room: string; before?: string; limit?: number; ref?: string }
export interface PingFrame { type: 'ping'; ref?: string }
/** Pages through a joined room's users, ascending by id (v1.1, "Rooms of any size"). */
export interface MembersRequestFrame { type: 'members'; room: string; after?: string; limit?: number; ref?: string }

/** Opens the direct conversation with `with` (v1.1, "Conversations"). */
export interface OpenFrame { type: 'open'; with: string; ref?: string }
/** Moves the sender's read position in members-only room `room` forward to `id` (v1.1). */
export interface ReadFrame { type: 'read'; room: string; id: string; ref?: string }
/** Lists the sender's members-only rooms, most recent activity first (v1.1); `before` is a `next` from an earlier page. */
export interface RoomsRequestFrame { type: 'rooms'; limit?: number; before?: string; ref?: string }

/** Replaces the text of the sender's own message `target` in `room` (addition: "Messages that change"). */
export interface EditFrame { type: 'edit'; room: string; target: string; text: string; ref?: string }
/** Deletes message `target` in `room`: the author's own, or anyone's for a moderator of the room (addition). */
export interface DeleteFrame { type: 'delete'; room: string; target: string; ref?: string }
/** Adds (`react`) or removes (`unreact`) the sender's reaction `reaction` on message `target` (addition). */
export interface ReactFrame { type: 'react' | 'unreact'; room: string; target: string; reaction: string; ref?: string }

export type ClientFrame =
  | JoinFrame
  | LeaveFrame
  | SendFrame
  | DirectSendFrame
  | TypingFrame
  | HistoryRequestFrame
  | PingFrame
  | MembersRequestFrame
  | OpenFrame
  | ReadFrame
  | RoomsRequestFrame
  | EditFrame
  | DeleteFrame
  | ReactFrame;

export type ClientFrameType = ClientFrame['type'];

export const CLIENT_FRAME_TYPES: readonly ClientFrameType[] = [
  'join', 'leave', 'send', 'dm', 'typing', 'history', 'ping', 'members', 'open', 'read', 'rooms', 'edit', 'delete', 'react', 'unreact',
];

// ---- server -> client -------------------------------------------------------

export interface WelcomeFrame {
  type: 'welcome';
  user: string;
  connection: string;
  node: string;
  /** Event streams only: what POSTs carry. */
  session?: string;
  /** Added: the room patterns the user moderates (token claim `mod`), when any. */
  mod?: string[];
}
/** An event stream's last event, where a WebSocket would be closed with `code` (fallback transport). */
export interface StreamCloseFrame { type: 'close'; code: number; reason: string }
export interface MessageFrame {
  type: 'message';
  room: string;
  id: string;
  user: string;
  /** Empty for a deleted message. */
  text: string;
  ts: number;
  /** Added: when the text was last edited (ms); pages and recovered history show the current text. */
  edited?: number;
  /** Added: the message was deleted; `text` is empty and it carries no reactions. */
  deleted?: true;
  /** Added, on pages: reaction -> how many users reacted with it. */
  reactions?: Record<string, number>;
  /** Added, on pages: the reactions the reader added. */
  mine?: string[];
}
/** What every change frame carries: its own id, the message it changes, who made it and when (addition). */
interface ChangeFrameBase { room: string; id: string; target: string; user: string; ts: number }
export interface EditEventFrame extends ChangeFrameBase { type: 'edit'; text: string }
export interface DeleteEventFrame extends ChangeFrameBase { type: 'delete' }
/** `count`: how many users react to `target` with `reaction` after this change. */
export interface ReactionEventFrame extends ChangeFrameBase { type: 'reaction'; reaction: string; op: 'add' | 'remove'; count: number }
export type ChangeEventFrame = EditEventFrame | DeleteEventFrame | ReactionEventFrame;
export interface JoinedFrame {
  type: 'joined';
  room: string;
  ref?: string;
  /** v1.1: users with a connection joined to the room on any node, the joiner included. */
  count: number;
  /** Every one of them while `count` is at most the list limit; else at most that many, the joiner included. */
  members: string[];
  /**
   * Added (docs/protocol.md): the gateway's list limit L. While `count` is above it
   * the room sends `occupancy` instead of per-user `presence`.
   */
  limit?: number;
  history: MessageFrame[];
  /** Present when the join carried `since`: false when messages after it were already trimmed. */
  recovered?: boolean;
  /**
   * Added (docs/protocol.md): the id the member is at once `history` is read; every
   * later message follows live. A client that receives none rejoins with it as `since`.
   */
  newest?: string;
}
export interface LeftFrame { type: 'left'; room: string; ref?: string }
/** `unchanged` (added): a `react`/`unreact` that found the reaction already as asked; `id` is then the target's. */
export interface AckFrame { type: 'ack'; ref?: string; id: string; ts: number; unchanged?: true }
export interface DirectMessageFrame { type: 'dm'; id: string; from: string; to: string; text: string; ts: number }
export interface PresenceFrame { type: 'presence'; room: string; user: string; state: 'online' | 'offline' }
export interface TypingEventFrame { type: 'typing'; room: string; user: string }
export interface HistoryFrame { type: 'history'; room: string; ref?: string; messages: MessageFrame[] }
export interface PongFrame { type: 'pong'; ref?: string; ts: number }
/** A page of a room's users (v1.1): pass `next` as `after` for the following one; absent on the last page. */
export interface MembersFrame { type: 'members'; room: string; ref?: string; users: string[]; count: number; next?: string }
/** Replaces per-user `presence` while a room has more users than the list limit (v1.1). */
export interface OccupancyFrame { type: 'occupancy'; room: string; count: number }
/** The direct conversation of the sender and `with` is room `room`, the same whoever opens it (v1.1). */
export interface OpenedFrame { type: 'opened'; room: string; with: string; ref?: string }
/** The user's unread count and read position in `room` changed (v1.1); `last` is the message that caused it, if one did. */
export interface UnreadFrame { type: 'unread'; room: string; count: number; read: string; last?: MessageFrame; ref?: string }
export interface RoomEntry { room: string; unread: number; read: string; last: MessageFrame | null; with?: string }
/** A page of the user's members-only rooms, most recent activity first (v1.1): pass `next` as `before` for the following one. */
export interface RoomsFrame { type: 'rooms'; ref?: string; rooms: RoomEntry[]; next?: string }
/** `reason` (added): a moderator's reason, with `banned` and `muted`. */
export interface ErrorFrame { type: 'error'; ref?: string; code: ErrorCode; message: string; reason?: string }

export type ServerFrame =
  | WelcomeFrame
  | StreamCloseFrame
  | JoinedFrame
  | LeftFrame
  | MessageFrame
  | AckFrame
  | DirectMessageFrame
  | PresenceFrame
  | TypingEventFrame
  | HistoryFrame
  | PongFrame
  | MembersFrame
  | OccupancyFrame
  | OpenedFrame
  | UnreadFrame
  | RoomsFrame
  | EditEventFrame
  | DeleteEventFrame
  | ReactionEventFrame
  | ErrorFrame;

export type ServerFrameType = ServerFrame['type'];
