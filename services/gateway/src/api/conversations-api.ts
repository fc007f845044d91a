import { ConversationConflictError, NotAMemberError, PositionAheadError, unreadOf } from '@chat/broker';
import { MEMBERS_MAX_LIMIT, ROOMS_DEFAULT_LIMIT, ROOMS_MAX_LIMIT, isMessageId, isValidName, NAME_PATTERN } from '@chat/protocol';
import { directRoomName, isDirectRoom } from '../conversations/direct-rooms.js';
import { listRooms } from '../conversations/room-list.js';
import { encodeUserCommand, type UserCommand } from '../user-command.js';
import { apiError, jsonObject, type ApiReply } from './http.js';
import { intParam, memberPage, name, roomsCursor, userList, type Checked } from './params.js';
import type { ApiDeps, ApiInput, ApiRoute } from './routes.js';

/**
 * Conversations (protocol v1.1): a room's stored members, which last across
 * connections, apart from who is connected to it (`/api/rooms/{room}/members`);
 * a user's rooms with their unread counts; read positions; direct conversations.
 * Each change is told to the users' connections on every node through user
 * commands, as the protocol's own `open` and `read` do. A change is stored
 * before it is told, and every route may be repeated: a repeat stores nothing
 * new and tells again, so a 503 between the two is mended by retrying.
 */
export function conversationRoutes(deps: ApiDeps): ApiRoute[] {
  return [
    { method: 'get', path: '/api/rooms/:room/membership', handle: (input) => storedMembers(deps, input) },
    { method: 'put', path: '/api/rooms/:room/membership', body: true, handle: (input) => makeMembersOnly(deps, input) },
    { method: 'put', path: '/api/rooms/:room/membership/:user', handle: (input) => changeMember(deps, input, 'add') },
    { method: 'del', path: '/api/rooms/:room/membership/:user', handle: (input) => changeMember(deps, input, 'remove') },
    { method: 'get', path: '/api/users/:user/rooms', handle: (input) => userRooms(deps, input) },
    { method: 'post', path: '/api/users/:user/rooms/:room/read', body: true, handle: (input) => markRead(deps, input) },
    { method: 'post', path: '/api/users/:user/open', body: true, handle: (input) => open(deps, input) },
  ];
}

/** A page of the stored members by id, as the protocol's `members` pages; `membersOnly` says whether the room has a member list at all. */
async function storedMembers({ membership }: ApiDeps, { params, query }: ApiInput): Promise<ApiReply> {
  const asked = memberPage(params, query);
  if (!asked.ok) return asked.reply;
  const { room, after, limit } = asked.value;
  // '' is nobody's id: its access is 'open' exactly when the room is not members-only.
  const [page, access] = await Promise.all([membership.members(room, after, limit), membership.access(room, '')]);
  return { status: 200, body: { room, membersOnly: access !== 'open', members: page.users, count: page.count, next: page.next ?? null } };
}

/**
 * Body (optional) {"members"?: [U...]}: the room becomes members-only for good,
 * with these members added (their nodes start counting it for them); then every
 * user connected to the room who is not a member leaves it on every node. The
 * only route that makes a room members-only, so the only one that must look
 * for outsiders: once it is, the broker refuses a non-member's join itself.
 */
async function makeMembersOnly(deps: ApiDeps, { params, body }: ApiInput): Promise<ApiReply> {
  const room = memberListOf(params[0]!);
  if (!room.ok) return room.reply;
  const input = jsonObject(body, true);
  if (!input.ok) return input.reply;
  const members = userList(input.value.members ?? [], 'members', MEMBERS_MAX_LIMIT);
  if (!members.ok) return members.reply;
  const added = await deps.membership.add(room.value, members.value);
  // Every listed member, not only the new ones: a repeat then reaches nodes a failed first try did not.
  await Promise.all(members.value.map((user) => tell(deps, user, { op: 'member', room: room.value })));
  const left = await sendOutsidersAway(deps, room.value);
  return { status: 200, body: { room: room.value, added, left } };
}

/**
 * Adds or removes one member of a room that is members-only already (an open
 * room gets 409: making one members-only must also send its outsiders away).
 * An added user's nodes start counting the room for them; a removed user's
 * connections all leave it (`left`), and the broker refuses their sends from
 * the moment the removal is stored.
 */
async function changeMember(deps: ApiDeps, { params }: ApiInput, change: 'add' | 'remove'): Promise<ApiReply> {
  const room = memberListOf(params[0]!);
  if (!room.ok) return room.reply;
  const user = name(params[1]!, 'user');
  if (!user.ok) return user.reply;
  const { membership } = deps;
  if (await membership.access(room.value, user.value) === 'open') {
    return apiError(409, 'bad_request', `"${room.value}" is open: make it members-only first (PUT /api/rooms/{room}/membership)`);
  }
  if (change === 'add') {
    const added = await membership.add(room.value, [user.value]);
    const nodes = await tell(deps, user.value, { op: 'member', room: room.value });
    return { status: 200, body: { room: room.value, user: user.value, added: added.length > 0, nodes } };
  }
  const removed = await membership.remove(room.value, [user.value]);
  const nodes = await tell(deps, user.value, { op: 'unmember', room: room.value });
  return { status: 200, body: { room: room.value, user: user.value, removed: removed.length > 0, nodes } };
}

/** The same page as the protocol's `rooms` frame for this user (same order, cursor and limits), with `last` as a message object. */
async function userRooms(deps: ApiDeps, { params, query }: ApiInput): Promise<ApiReply> {
  const user = name(params[0]!, 'user');
  if (!user.ok) return user.reply;
  const limit = intParam(query, 'limit', ROOMS_DEFAULT_LIMIT, 1, ROOMS_MAX_LIMIT);
  if (!limit.ok) return limit.reply;
  const before = roomsCursor(query, 'before');
  if (!before.ok) return before.reply;
  const page = await listRooms(deps, user.value, before.value, limit.value);
  // `last` is a message frame already encoded: spliced in, as the frame does, not parsed and encoded again.
  const rooms = page.rooms.map((r) => `{"room":${q(r.room)},"unread":${r.unread},"read":${q(r.read)},"last":${r.last ?? 'null'}${r.with === undefined ? '' : `,"with":${q(r.with)}`}}`);
  return { status: 200, body: `{"user":${q(user.value)},"rooms":[${rooms.join(',')}],"next":${page.next === undefined ? 'null' : q(page.next)}}` };
}

/**
 * Body {"id": ID}: moves the user's read position forward to ID (an older ID
 * changes nothing), as their own `read` would; every connection of theirs, on
 * every node, then gets `unread` with the count. Answers with the state.
 */
async function markRead(deps: ApiDeps, { params, body }: ApiInput): Promise<ApiReply> {
  const user = name(params[0]!, 'user');
  if (!user.ok) return user.reply;
  const room = name(params[1]!, 'room');
  if (!room.ok) return room.reply;
  const input = jsonObject(body, false);
  if (!input.ok) return input.reply;
  const { id } = input.value;
  if (!isMessageId(id)) return apiError(400, 'bad_request', '"id" must be a message id <ms>-<seq>');
  let state;
  try {
    state = await deps.reads.markRead(room.value, user.value, id);
  } catch (err) {
    return refused(err);
  }
  const { read, total } = state;
  await tell(deps, user.value, { op: 'read', room: room.value, id: read.id, number: read.number, total, except: '' });
  return { status: 200, body: { room: room.value, user: user.value, count: unreadOf(state), read: read.id } };
}

/**
 * Body {"with": U}: opens the direct conversation of the user and U, the same
 * room as the protocol's `open` (either of them, however often); both users'
 * nodes start counting it. The tokens' `dm` and `rooms` claims are not
 * consulted: the backend decided.
 */
async function open(deps: ApiDeps, { params, body }: ApiInput): Promise<ApiReply> {
  const user = name(params[0]!, 'user');
  if (!user.ok) return user.reply;
  const input = jsonObject(body, false);
  if (!input.ok) return input.reply;
  const other = input.value.with;
  if (!isValidName(other)) return apiError(400, 'bad_request', `"with" must match ${NAME_PATTERN.source}`);
  if (other === user.value) return apiError(400, 'bad_request', 'a direct conversation needs another user');
  const room = directRoomName(user.value, other);
  try {
    await deps.membership.openPair(room, user.value, other);
  } catch (err) {
    return refused(err);
  }
  await Promise.all([user.value, other].map((u) => tell(deps, u, { op: 'member', room })));
  return { status: 200, body: { room, user: user.value, with: other } };
}

/** A room whose member list the API may change: any but a direct conversation, whose members are its pair for good. */
function memberListOf(value: string): Checked<string> {
  const room = name(value, 'room');
  if (room.ok && isDirectRoom(room.value)) {
    return { ok: false, reply: apiError(403, 'forbidden', `"${room.value}" is a direct conversation: its members are its two users (POST /api/users/{user}/open)`) };
  }
  return room;
}

/**
 * Every user connected to the room who is not a member leaves it on every
 * node: the connected users a page at a time, by id, one access check each.
 * Resolves with whom it sent away.
 */
async function sendOutsidersAway(deps: ApiDeps, room: string): Promise<string[]> {
  const { directory, membership } = deps;
  const away: string[] = [];
  let after: string | undefined;
  do {
    const page = await directory.roomMembers(room, after, MEMBERS_MAX_LIMIT);
    const access = await Promise.all(page.members.map(({ user }) => membership.access(room, user)));
    const outsiders = page.members.filter((_, i) => access[i] === 'outsider').map(({ user }) => user);
    await Promise.all(outsiders.map((user) => tell(deps, user, { op: 'leave', room })));
    away.push(...outsiders);
    after = page.next;
  } while (after !== undefined);
  return away;
}

/** Resolves with how many nodes have a connection of the user (0: none; the command then does nothing). */
function tell({ broker }: ApiDeps, user: string, command: UserCommand): Promise<number> {
  return broker.sendUserCommand(user, encodeUserCommand(command));
}

/** The broker's refusals as 4xx; anything else goes on to the server API's failure handling (503 for an outage). */
function refused(err: unknown): ApiReply {
  if (err instanceof NotAMemberError) return apiError(403, 'forbidden', err.message);
  if (err instanceof PositionAheadError) return apiError(400, 'bad_request', `"id" is after the newest message of "${err.room}" (${err.newest})`);
  if (err instanceof ConversationConflictError) return apiError(409, 'forbidden', 'the room of that direct conversation is used otherwise');
  throw err;
}

const q = (value: string): string => JSON.stringify(value);
