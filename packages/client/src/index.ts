export {
  ChatClient,
  ChatRequestError,
  streamUrlOf,
  type MemberList,
  type ReadResult,
  type RoomUnread,
  type SendOptions,
  type ChatClientOptions,
  type ChatClientEvents,
  type ConnectionState,
  type StateDetail,
} from './chat-client.js';
export { applyChange } from './message-changes.js';
export type { TransportName } from './transport.js';
export type { WebSocketFactory, WebSocketLike } from './websocket-transport.js';
export type { FetchLike, ResponseLike } from './sse-transport.js';
export type { StorageLike } from './transport-choice.js';
/** The frames an application sees, so that it needs no other package. */
export type {
  AckFrame,
  ChangeEventFrame,
  DeleteEventFrame,
  DirectMessageFrame,
  EditEventFrame,
  ErrorFrame,
  JoinedFrame,
  LeftFrame,
  MembersFrame,
  MessageFrame,
  OccupancyFrame,
  OpenedFrame,
  PresenceFrame,
  ReactionEventFrame,
  RoomEntry,
  RoomsFrame,
  TypingEventFrame,
  UnreadFrame,
  WelcomeFrame,
} from './protocol.js';
