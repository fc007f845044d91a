import { CloseCode, type ErrorCode } from './codes.js';
import type { ClientFrame, DirectSendFrame, HistoryRequestFrame, JoinFrame, MembersRequestFrame, RoomsRequestFrame, SendFrame } from './frames.js';
import { isMessageId } from './ids.js';
import { isValidName } from './names.js';

export interface FrameLimits {
  /** Largest accepted frame, in bytes; a larger one closes the connection with 1009. */
  maxFrameBytes: number;
  /** Longest accepted `text`, in UTF-16 code units; longer gets `payload_too_large`. */
  maxTextLength: number;
}

export const HISTORY_DEFAULT_LIMIT = 50;
export const HISTORY_MAX_LIMIT = 100;
export const MEMBERS_DEFAULT_LIMIT = 100;
export const MEMBERS_MAX_LIMIT = 1000;
export const ROOMS_DEFAULT_LIMIT = 50;
export const ROOMS_MAX_LIMIT = 100;
/** A reaction is a short key from this alphabet (an emoji's name, `+1`...), so any client can show and count it. */
export const REACTION_PATTERN = /^[a-z0-9_+-]{1,32}$/;
/** At most this many different reactions on one message. */
export const REACTIONS_PER_MESSAGE_MAX = 20;

export function isReaction(value: unknown): value is string {
  return typeof value === 'string' && REACTION_PATTERN.test(value);
}
/** A `rooms` cursor: when the last entry of a page was active, and its room (see RoomsFrame.next). */
const ROOMS_CURSOR = /^\d{1,20}~[A-Za-z0-9_.:-]{1,64}$/;

/** Whether `value` is a `next` a `rooms` page could have given (what `before` takes). */
export function isRoomsCursor(value: unknown): value is string {
  return typeof value === 'string' && ROOMS_CURSOR.test(value);
}

export interface FrameError {
  code: ErrorCode;
  message: string;
  /** The frame's `ref`, when it was a JSON object with a string `ref`. */
  ref?: string;
  /** Set when the connection must be closed instead of answered. */
  close?: CloseCode;
}

export type ParseResult = { ok: true; frame: ClientFrame } | { ok: false; error: FrameError };

type RawObject = Record<string, unknown>;
type Validator = (o: RawObject, limits: FrameLimits) => ClientFrame | FrameError;

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/**
 * Decodes one client frame. Never throws: every bad input maps to a protocol
 * error code, so callers can answer it with an `error` frame.
 */
export function parseClientFrame(
  raw: string | Uint8Array | ArrayBuffer,
  limits: FrameLimits,
  isBinary = false,
): ParseResult {
  if (exceedsBytes(raw, limits.maxFrameBytes)) {
    return fail({ code: 'payload_too_large', message: `frame exceeds ${limits.maxFrameBytes} bytes`, close: CloseCode.MESSAGE_TOO_BIG });
  }
  if (isBinary) return fail({ code: 'bad_request', message: 'binary frames are not accepted; send JSON text' });

  let value: unknown;
  try {
    value = JSON.parse(typeof raw === 'string' ? raw : decoder.decode(raw));
  } catch {
    return fail({ code: 'bad_request', message: 'frame is not valid JSON' });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return fail({ code: 'bad_request', message: 'frame must be a JSON object' });
  }
  const o = value as RawObject;
  const ref = typeof o.ref === 'string' ? o.ref : undefined;
  if (o.ref !== undefined && ref === undefined) {
    return fail({ code: 'bad_request', message: '"ref" must be a string' });
  }
  const validate = typeof o.type === 'string' ? VALIDATORS.get(o.type) : undefined;
  if (validate === undefined) {
    const message = typeof o.type === 'string' ? `unknown frame type "${o.type.slice(0, 32)}"` : '"type" must be a string';
    return fail({ code: 'bad_request', message, ref });
  }
  const result = validate(o, limits);
  if ('code' in result) return fail(ref === undefined ? result : { ...result, ref });
  return { ok: true, frame: result };
}

function fail(error: FrameError): ParseResult {
  if (error.ref === undefined) delete error.ref;
  return { ok: false, error };
}

function exceedsBytes(raw: string | Uint8Array | ArrayBuffer, max: number): boolean {
  if (typeof raw !== 'string') return raw.byteLength > max;
  // UTF-8 takes 1 to 3 bytes per UTF-16 unit: only encode when the bound is unclear.
  if (raw.length > max) return true;
  if (raw.length * 3 <= max) return false;
  return encoder.encode(raw).byteLength > max;
}

// ---- field checks -------------------------------------------------------------

function badField(field: string, expected: string): FrameError {
  return { code: 'bad_request', message: `"${field}" must be ${expected}` };
}

function checkRoom(o: RawObject): FrameError | undefined {
  return isValidName(o.room) ? undefined : badField('room', 'a name matching ^[A-Za-z0-9_.:-]{1,64}$');
}

function checkText(o: RawObject, limits: FrameLimits): FrameError | undefined {
  if (typeof o.text !== 'string') return badField('text', 'a string');
  if (o.text.length > limits.maxTextLength) {
    return { code: 'payload_too_large', message: `"text" exceeds ${limits.maxTextLength} characters` };
  }
  return undefined;
}

/** A positive integer, capped at `max`: undefined when absent, or the error. */
function readLimit(o: RawObject, max: number): number | undefined | FrameError {
  if (o.limit === undefined) return undefined;
  if (!(Number.isInteger(o.limit) && (o.limit as number) >= 1)) return badField('limit', 'a positive integer');
  return Math.min(o.limit as number, max);
}

function checkKey(o: RawObject): FrameError | undefined {
  return o.key === undefined || isValidName(o.key) ? undefined : badField('key', 'an idempotency key matching ^[A-Za-z0-9_.:-]{1,64}$');
}

function checkTarget(o: RawObject): FrameError | undefined {
  return isMessageId(o.target) ? undefined : badField('target', 'a message id "<ms>-<seq>"');
}

function reaction(type: 'react' | 'unreact'): Validator {
  return (o) => {
    const err = checkRoom(o) ?? checkTarget(o);
    if (err) return err;
    if (!isReaction(o.reaction)) return badField('reaction', `a key matching ${REACTION_PATTERN.source}`);
    return withRef({ type, room: o.room as string, target: o.target as string, reaction: o.reaction }, o);
  };
}

function withKey<T extends SendFrame | DirectSendFrame>(frame: T, o: RawObject): T {
  if (o.key !== undefined) frame.key = o.key as string;
  return frame;
}

function withRef<T extends ClientFrame>(frame: T, o: RawObject): T {
  if (typeof o.ref === 'string') frame.ref = o.ref;
  return frame;
}

// ---- one validator per frame type ---------------------------------------------

const VALIDATORS = new Map<string, Validator>(Object.entries({
  join(o) {
    const err = checkRoom(o);
    if (err) return err;
    if (o.since !== undefined && !isMessageId(o.since)) return badField('since', 'a message id "<ms>-<seq>"');
    const frame: JoinFrame = { type: 'join', room: o.room as string };
    if (o.since !== undefined) frame.since = o.since as string;
    return withRef(frame, o);
  },
  leave(o) {
    return checkRoom(o) ?? withRef({ type: 'leave', room: o.room as string }, o);
  },
  send(o, limits) {
    return checkRoom(o) ?? checkText(o, limits) ?? checkKey(o)
      ?? withRef(withKey({ type: 'send', room: o.room as string, text: o.text as string }, o), o);
  },
  dm(o, limits) {
    if (!isValidName(o.to)) return badField('to', 'a user id matching ^[A-Za-z0-9_.:-]{1,64}$');
    return checkText(o, limits) ?? checkKey(o) ?? withRef(withKey({ type: 'dm', to: o.to, text: o.text as string }, o), o);
  },
  typing(o) {
    return checkRoom(o) ?? withRef({ type: 'typing', room: o.room as string }, o);
  },
  history(o) {
    const err = checkRoom(o);
    if (err) return err;
    if (o.before !== undefined && !isMessageId(o.before)) return badField('before', 'a message id "<ms>-<seq>"');
    const limit = readLimit(o, HISTORY_MAX_LIMIT);
    if (typeof limit === 'object') return limit;
    const frame: HistoryRequestFrame = { type: 'history', room: o.room as string };
    if (o.before !== undefined) frame.before = o.before as string;
    if (limit !== undefined) frame.limit = limit;
    return withRef(frame, o);
  },
  members(o) {
    const err = checkRoom(o);
    if (err) return err;
    if (o.after !== undefined && !isValidName(o.after)) return badField('after', 'a user id matching ^[A-Za-z0-9_.:-]{1,64}$');
    const limit = readLimit(o, MEMBERS_MAX_LIMIT);
    if (typeof limit === 'object') return limit;
    const frame: MembersRequestFrame = { type: 'members', room: o.room as string };
    if (o.after !== undefined) frame.after = o.after;
    if (limit !== undefined) frame.limit = limit;
    return withRef(frame, o);
  },
  ping(o) {
    return withRef({ type: 'ping' }, o);
  },
  open(o) {
    if (!isValidName(o.with)) return badField('with', 'a user id matching ^[A-Za-z0-9_.:-]{1,64}$');
    return withRef({ type: 'open', with: o.with }, o);
  },
  read(o) {
    const err = checkRoom(o);
    if (err) return err;
    if (!isMessageId(o.id)) return badField('id', 'a message id "<ms>-<seq>"');
    return withRef({ type: 'read', room: o.room as string, id: o.id }, o);
  },
  rooms(o) {
    if (o.before !== undefined && !isRoomsCursor(o.before)) return badField('before', 'a "next" from an earlier rooms page');
    const limit = readLimit(o, ROOMS_MAX_LIMIT);
    if (typeof limit === 'object') return limit;
    const frame: RoomsRequestFrame = { type: 'rooms' };
    if (o.before !== undefined) frame.before = o.before as string;
    if (limit !== undefined) frame.limit = limit;
    return withRef(frame, o);
  },
  edit(o, limits) {
    return checkRoom(o) ?? checkTarget(o) ?? checkText(o, limits)
      ?? withRef({ type: 'edit', room: o.room as string, target: o.target as string, text: o.text as string }, o);
  },
  delete(o) {
    return checkRoom(o) ?? checkTarget(o) ?? withRef({ type: 'delete', room: o.room as string, target: o.target as string }, o);
  },
  react: reaction('react'),
  unreact: reaction('unreact'),
} satisfies Record<ClientFrame['type'], Validator>));
