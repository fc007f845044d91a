/** Error codes carried by `error` frames (PROTOCOL.md, "Errors and limits"). */
export const ERROR_CODES = [
  'bad_request',
  'payload_too_large',
  'not_joined',
  'forbidden',
  'rate_limited',
  'offline',
  'unavailable',
  'internal',
  // Added (docs/protocol.md, "Messages that change"):
  /** The target of an edit, delete or reaction is not a stored message of the room (never was, another room's, or trimmed). */
  'not_found',
  /** The target was deleted. */
  'gone',
  /** A moderator banned the user from the room: no join, no send. */
  'banned',
  /** A moderator muted the user in the room: they read, they do not post. */
  'muted',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/** WebSocket close codes the gateway uses (PROTOCOL.md, "Close codes"). */
export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  POLICY_VIOLATION: 1008,
  MESSAGE_TOO_BIG: 1009,
  INTERNAL_ERROR: 1011,
  TRY_AGAIN_LATER: 1013,
  /** Added (docs/protocol.md): the application disconnected the user through the server API; do not reconnect on your own. */
  DISCONNECTED: 4000,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];
