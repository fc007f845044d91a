import { changeFrameHead, deleteFrameBody, isMessageId } from '@chat/protocol';
import type { Restriction } from '@chat/broker';
import { eraseUser } from '../changes/erasure.js';
import { encodeUserCommand } from '../user-commands.js';
import { apiError, jsonObject, type ApiReply } from './http.js';
import { name, optionalParam } from './params.js';
import type { ApiDeps, ApiInput, ApiRoute } from './routes.js';

const MAX_REASON_LENGTH = 500;

/** Moderation: moderators, bans, mutes, a moderator's delete, and erasing a user's messages. */
export function moderationRoutes(deps: ApiDeps): ApiRoute[] {
  return [
    { method: 'get', path: '/api/rooms/:room/moderation', handle: (input) => moderationOf(deps, input) },
    { method: 'put', path: '/api/rooms/:room/moderators/:user', handle: (input) => setModerator(deps, input, true) },
    { method: 'del', path: '/api/rooms/:room/moderators/:user', handle: (input) => setModerator(deps, input, false) },
    { method: 'put', path: '/api/rooms/:room/bans/:user', body: true, handle: (input) => restrict(deps, input, 'ban') },
    { method: 'del', path: '/api/rooms/:room/bans/:user', handle: (input) => lift(deps, input, 'ban') },
    { method: 'put', path: '/api/rooms/:room/mutes/:user', body: true, handle: (input) => restrict(deps, input, 'mute') },
    { method: 'del', path: '/api/rooms/:room/mutes/:user', handle: (input) => lift(deps, input, 'mute') },
    { method: 'del', path: '/api/rooms/:room/messages/:id', handle: (input) => deleteMessage(deps, input) },
    { method: 'post', path: '/api/users/:user/erase', body: true, handle: (input) => erase(deps, input) },
  ];
}

type Names = { ok: true; room: string; user: string } | { ok: false; reply: ApiReply };

function roomAndUser(params: readonly string[]): Names {
  const room = name(params[0]!, 'room');
  if (!room.ok) return room;
  const user = name(params[1]!, 'user');
  if (!user.ok) return user;
  return { ok: true, room: room.value, user: user.value };
}

async function moderationOf({ moderation }: ApiDeps, { params }: ApiInput): Promise<ApiReply> {
  const room = name(params[0]!, 'room');
  if (!room.ok) return room.reply;
  return { status: 200, body: { room: room.value, ...(await moderation.of(room.value)) } };
}

async function setModerator({ moderation }: ApiDeps, { params }: ApiInput, moderator: boolean): Promise<ApiReply> {
  const names = roomAndUser(params);
  if (!names.ok) return names.reply;
  await moderation.setModerator(names.room, names.user, moderator);
  return { status: 200, body: { room: names.room, user: names.user, moderator } };
}

/**
 * Body {"reason": string}. A ban also takes every connection of the user out
 * of the room at once (`left` without `ref`); their next `join` or `send` is
 * refused with the reason.
 */
async function restrict({ moderation, broker }: ApiDeps, { params, body }: ApiInput, kind: Restriction['kind']): Promise<ApiReply> {
  const names = roomAndUser(params);
  if (!names.ok) return names.reply;
  const input = jsonObject(body, false);
  if (!input.ok) return input.reply;
  const { reason } = input.value;
  if (typeof reason !== 'string' || reason.length > MAX_REASON_LENGTH) return apiError(400, 'bad_request', `"reason" must be a string of at most ${MAX_REASON_LENGTH} characters`);
  await moderation.restrict(names.room, names.user, { kind, reason });
  if (kind === 'ban') await broker.sendUserCommand(names.user, encodeUserCommand({ op: 'leave', room: names.room }));
  return { status: 200, body: { room: names.room, user: names.user, [kind === 'ban' ? 'banned' : 'muted']: true, reason } };
}

async function lift({ moderation }: ApiDeps, { params }: ApiInput, kind: Restriction['kind']): Promise<ApiReply> {
  const names = roomAndUser(params);
  if (!names.ok) return names.reply;
  const lifted = await moderation.lift(names.room, names.user, kind);
  return { status: 200, body: { room: names.room, user: names.user, [kind === 'ban' ? 'banned' : 'muted']: false, lifted } };
}

/** A moderator's delete by the backend: `?as=<user>` names who the delete frame says did it ("system" by default). */
async function deleteMessage({ changes }: ApiDeps, { params, query }: ApiInput): Promise<ApiReply> {
  const room = name(params[0]!, 'room');
  if (!room.ok) return room.reply;
  const target = params[1]!;
  if (!isMessageId(target)) return apiError(400, 'bad_request', 'the message id must be <ms>-<seq>');
  const as = optionalParam(query, 'as', 'name');
  if (!as.ok) return as.reply;
  const user = as.value ?? 'system';
  const ts = Date.now();
  const { id } = await changes.delete({
    room: room.value, user, target, ts, head: changeFrameHead(room.value, 'delete'), body: deleteFrameBody(target, user, ts), moderator: true,
  });
  return { status: 200, body: { room: room.value, target, id, ts } };
}

/** Body (optional) {"room"?: R}: every message of the user in R, or in every room, becomes a tombstone, in Redis and in the archive. */
async function erase({ changes, erasure }: ApiDeps, { params, body }: ApiInput): Promise<ApiReply> {
  const user = name(params[0]!, 'user');
  if (!user.ok) return user.reply;
  const input = jsonObject(body, true);
  if (!input.ok) return input.reply;
  const { room } = input.value;
  if (room !== undefined) {
    const checked = typeof room === 'string' ? name(room, 'room') : name('', 'room');
    if (!checked.ok) return checked.reply;
  }
  const result = await eraseUser(changes, erasure, user.value, room as string | undefined);
  return { status: 200, body: { user: user.value, ...(room !== undefined && { room }), erased: result } };
}
