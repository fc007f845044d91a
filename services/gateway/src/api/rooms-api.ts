import { HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT, isValidName } from '@chat/protocol';
import { postRoomMessage } from '../room-messages.js';
import { encodeUserCommand } from '../user-commands.js';
import { apiError, jsonObject, type ApiReply } from './http.js';
import { intParam, memberPage, name, optionalParam } from './params.js';
import type { ApiDeps, ApiInput, ApiRoute } from './routes.js';

/** Rooms: which are active, who is in one, its history; post to it; put a user in or take them out. */
export function roomRoutes(deps: ApiDeps): ApiRoute[] {
  return [
    { method: 'get', path: '/api/rooms', handle: (input) => listRooms(deps, input) },
    { method: 'get', path: '/api/rooms/:room/members', handle: (input) => members(deps, input) },
    { method: 'put', path: '/api/rooms/:room/members/:user', handle: (input) => moveUser(deps, input, 'join') },
    { method: 'del', path: '/api/rooms/:room/members/:user', handle: (input) => moveUser(deps, input, 'leave') },
    { method: 'get', path: '/api/rooms/:room/messages', handle: (input) => messages(deps, input) },
    { method: 'post', path: '/api/rooms/:room/messages', body: true, headers: ['idempotency-key'], handle: (input) => publish(deps, input) },
  ];
}

async function listRooms({ directory }: ApiDeps, { query }: ApiInput): Promise<ApiReply> {
  const limit = intParam(query, 'limit', 100, 1, 1000);
  if (!limit.ok) return limit.reply;
  const after = optionalParam(query, 'after', 'name');
  if (!after.ok) return after.reply;
  const page = await directory.activeRooms(after.value, limit.value);
  return { status: 200, body: { rooms: page.rooms, next: page.next ?? null } };
}

/** A page of the room's members by user id, with their connections: the same order and limits as the protocol's `members`. */
async function members({ directory }: ApiDeps, { params, query }: ApiInput): Promise<ApiReply> {
  const asked = memberPage(params, query);
  if (!asked.ok) return asked.reply;
  const { room, after, limit } = asked.value;
  const page = await directory.roomMembers(room, after, limit);
  return { status: 200, body: { room, members: page.members, count: page.count, next: page.next ?? null } };
}

/** Every connection of the user, on every node, joins (or leaves) as if it had asked. */
async function moveUser({ broker }: ApiDeps, { params }: ApiInput, op: 'join' | 'leave'): Promise<ApiReply> {
  const room = name(params[0]!, 'room');
  if (!room.ok) return room.reply;
  const user = name(params[1]!, 'user');
  if (!user.ok) return user.reply;
  const nodes = await broker.sendUserCommand(user.value, encodeUserCommand({ op, room: room.value }));
  if (nodes === 0) return apiError(409, 'offline', `"${user.value}" has no open connection`);
  return { status: 200, body: { room: room.value, user: user.value, nodes } };
}

/** The same pages as the protocol's `history`: stream, then archive; oldest first. */
async function messages({ history, rooms }: ApiDeps, { params, query }: ApiInput): Promise<ApiReply> {
  const room = name(params[0]!, 'room');
  if (!room.ok) return room.reply;
  const before = optionalParam(query, 'before', 'id');
  if (!before.ok) return before.reply;
  const limit = intParam(query, 'limit', HISTORY_DEFAULT_LIMIT, 1, HISTORY_MAX_LIMIT);
  if (!limit.ok) return limit.reply;
  const page = await history.page(room.value, before.value, limit.value);
  const head = rooms.head(room.value);
  return { status: 200, body: `{"room":${JSON.stringify(room.value)},"messages":[${page.map((m) => head + m.id + m.body).join(',')}]}` };
}

/**
 * Body {"user": U (default "system"), "text": T}: the same validation, ordering
 * and ids as a client's `send`. 201 {"id","ts"}; with an `Idempotency-Key` used
 * before (same user and room), 200 and the first message's {"id","ts"}.
 */
async function publish(deps: ApiDeps, { params, body, headers }: ApiInput): Promise<ApiReply> {
  const room = name(params[0]!, 'room');
  if (!room.ok) return room.reply;
  const input = jsonObject(body, false);
  if (!input.ok) return input.reply;
  const { user = 'system', text } = input.value;
  if (!isValidName(user)) return apiError(400, 'bad_request', '"user" must match ^[A-Za-z0-9_.:-]{1,64}$');
  if (typeof text !== 'string') return apiError(400, 'bad_request', '"text" must be a string');
  if (text.length > deps.config.maxTextLength) return apiError(413, 'payload_too_large', `"text" exceeds ${deps.config.maxTextLength} characters`);
  const key = headers['idempotency-key'] || undefined;
  if (key !== undefined && !isValidName(key)) return apiError(400, 'bad_request', 'Idempotency-Key must match ^[A-Za-z0-9_.:-]{1,64}$');
  const { id, ts, repeat } = await postRoomMessage(deps, { room: room.value, user, text, key });
  return { status: repeat ? 200 : 201, body: { id, ts } };
}
