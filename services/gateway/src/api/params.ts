import { MEMBERS_DEFAULT_LIMIT, MEMBERS_MAX_LIMIT, isMessageId, isRoomsCursor, isValidName, NAME_PATTERN } from '@chat/protocol';
import { apiError, type ApiReply } from './http.js';

export type Checked<T> = { ok: true; value: T } | { ok: false; reply: ApiReply };

/** A room or user name from the path. */
export function name(value: string, what: 'room' | 'user'): Checked<string> {
  return isValidName(value) ? { ok: true, value } : { ok: false, reply: apiError(400, 'bad_request', `${what} must match ${NAME_PATTERN.source}`) };
}

/** An optional integer query parameter within [min, max]. */
export function intParam(query: URLSearchParams, key: string, fallback: number, min: number, max: number): Checked<number> {
  const raw = query.get(key);
  if (raw === null) return { ok: true, value: fallback };
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value < min || value > max) return { ok: false, reply: apiError(400, 'bad_request', `${key} must be an integer from ${min} to ${max}`) };
  return { ok: true, value };
}

/** An optional name (after=) or message id (before=) query parameter. */
export function optionalParam(query: URLSearchParams, key: string, kind: 'name' | 'id'): Checked<string | undefined> {
  const raw = query.get(key);
  if (raw === null) return { ok: true, value: undefined };
  const valid = kind === 'name' ? isValidName(raw) : isMessageId(raw);
  if (valid) return { ok: true, value: raw };
  return { ok: false, reply: apiError(400, 'bad_request', kind === 'name' ? `${key} must match ${NAME_PATTERN.source}` : `${key} must be a message id <ms>-<seq>`) };
}

/** An optional room-list cursor (before=). */
export function roomsCursor(query: URLSearchParams, key: string): Checked<string | undefined> {
  const raw = query.get(key);
  if (raw === null) return { ok: true, value: undefined };
  if (isRoomsCursor(raw)) return { ok: true, value: raw }; // as the protocol's `rooms` takes it
  return { ok: false, reply: apiError(400, 'bad_request', `${key} must be the "next" of an earlier page`) };
}

/** A list of distinct user names in the body, at most `max` of them. */
export function userList(value: unknown, field: string, max: number): Checked<string[]> {
  if (!Array.isArray(value) || value.length > max || !value.every((user) => isValidName(user))) {
    return { ok: false, reply: apiError(400, 'bad_request', `"${field}" must be a list of at most ${max} user ids matching ${NAME_PATTERN.source}`) };
  }
  return { ok: true, value: [...new Set(value as string[])] };
}

/** A room route's room and a page of its users (`after`, `limit`), with the limits of the protocol's `members`. */
export function memberPage(params: readonly string[], query: URLSearchParams): Checked<{ room: string; after: string | undefined; limit: number }> {
  const room = name(params[0]!, 'room');
  if (!room.ok) return room;
  const limit = intParam(query, 'limit', MEMBERS_DEFAULT_LIMIT, 1, MEMBERS_MAX_LIMIT);
  if (!limit.ok) return limit;
  const after = optionalParam(query, 'after', 'name');
  if (!after.ok) return after;
  return { ok: true, value: { room: room.value, after: after.value, limit: limit.value } };
}
