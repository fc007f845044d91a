import { CURRENT, MARKS } from './change-piece.js';
import { EVENTS } from './event-scripts.js';
import { ID_ORDER, NEWEST_ID, luaScript } from './lua.js';

/*
 * Members-only rooms, on the room's slot, beside its stream. Per room:
 *   conv     hash: `mo` (set: the room is members-only; never unset), `n` (how
 *            many messages were posted since it became members-only: the room's
 *            message number), `last` (its newest message id), `at` (when it was
 *            posted, in microseconds by Redis's clock: ids of two rooms posted in
 *            one millisecond do not say which came first), `pair` ("a|b" for a
 *            direct conversation);
 *   members  sorted set of the stored members, all scores 0, so it pages by id;
 *   reads    hash member -> "<id>|<number>": the member's read position and the
 *            number of the newest message at or before it.
 * A member's unread count is n minus the number of their read position, less
 * the deleted messages after it (marks `d|<number>`, see change-scripts.ts):
 * counters, never a count of stream entries, so trimming does not change it and
 * an idempotent repeat (which appends nothing) does not count twice. A sender's
 * own message moves their read position to it, so only other users' messages count.
 * The stream also holds changes (edits, deletes, reactions), which have no
 * number: what reads numbers or the newest message skips them.
 *
 * MEMBERS_ONLY is what the append and presence scripts ask (K.conv, K.members);
 * CONVERSATION is the piece every script of a room's read state shares (K.conv,
 * K.members, K.reads, K.stream, K.marks).
 */
export const MEMBERS_ONLY = `
local function membersOnly() return redis.call('HEXISTS', K.conv, 'mo') == 1 end
local function isMember(user) return redis.call('ZSCORE', K.members, user) ~= false end
`;

export const CONVERSATION = MEMBERS_ONLY + NEWEST_ID + `local function field(fields, name)
  for i = 1, #fields, 2 do if fields[i] == name then return fields[i + 1] end end
  return nil
end
local function total() return tonumber(redis.call('HGET', K.conv, 'n') or '0') end
-- The newest message entry at or before FROM ('+' for any), skipping changes; nil for none.
local function messageAtOrBefore(from)
  local cursor = from
  while true do
    local batch = redis.call('XREVRANGE', K.stream, cursor, '-', 'COUNT', 16)
    for i = 1, #batch do if batch[i][2][1] == 'b' then return batch[i] end end
    if #batch < 16 then return nil end
    cursor = '(' .. batch[#batch][1]
  end
end
-- The room's newest message: its preview (conv's last, which the delete script keeps off deleted messages).
local function newestMessage()
  local last = redis.call('HGET', K.conv, 'last')
  local entry = last and redis.call('XRANGE', K.stream, last, last)[1]
  return entry or messageAtOrBefore('+')
end
local function numberPad(n) local s = tostring(n) return string.rep('0', 16 - #s) .. s end
-- The numbers of deleted messages after NUMBER, which no unread count includes.
local function deletedAfter(number)
  local out = {}
  for i, mark in ipairs(redis.call('ZRANGE', K.marks, '(d|' .. numberPad(number), '(d|~', 'BYLEX')) do out[i] = tonumber(string.sub(mark, 3)) end
  return out
end
local function unread(at) return math.max(0, total() - at[2] - #deletedAfter(at[2])) end
-- {id, number} of a member's read position (nil for a non-member)
local function position(user)
  local at = redis.call('HGET', K.reads, user)
  if not at then return nil end
  local bar = string.find(at, '|', 1, true)
  return { string.sub(at, 1, bar - 1), tonumber(string.sub(at, bar + 1)) }
end
-- The number of the newest message at or before id. An id older than everything
-- stored names a point among trimmed messages, which nobody can be shown any
-- more: it counts as the oldest stored message's predecessor.
local function numberAt(id)
  local at = messageAtOrBefore(id)
  if at then return tonumber(field(at[2], 'n') or '0') end
  local oldest = redis.call('XRANGE', K.stream, '-', '+', 'COUNT', 16)
  for _, e in ipairs(oldest) do
    if field(e[2], 'n') then return math.max(0, tonumber(field(e[2], 'n')) - 1) end
  end
  return total()
end
`;

const ROOM_KEYS = ['conv', 'members', 'reads', 'stream', 'marks', 'changes'] as const;

/*
 * Adds members (a list separated by ','; names never hold one), making the room
 * members-only. A new member's read position is the room's newest message. With
 * `pair` ("a|b") the room is the direct conversation of a and b: created so on
 * first use, and refused ({-1}) when the room already is something else.
 * Returns {1, added...}.
 */
const MEMBERS_ADD = luaScript(ROOM_KEYS, ['users', 'pair'], CONVERSATION, `
if A.pair ~= '' then
  local pair = redis.call('HGET', K.conv, 'pair')
  if pair ~= A.pair and (pair or membersOnly()) then return { -1 } end
  redis.call('HSET', K.conv, 'pair', A.pair)
end
redis.call('HSET', K.conv, 'mo', '1')
local at = newestId() .. '|' .. total()
local added = { 1 }
for user in string.gmatch(A.users, '[^,]+') do
  if redis.call('ZADD', K.members, 'NX', 0, user) == 1 then
    redis.call('HSET', K.reads, user, at)
    added[#added + 1] = user
  end
end
return added
`);

/* Removes members (',' separated) with their read positions. Returns the users that were members. */
const MEMBERS_REMOVE = luaScript(ROOM_KEYS, ['users'], `
local removed = {}
for user in string.gmatch(A.users, '[^,]+') do
  if redis.call('ZREM', K.members, user) == 1 then
    redis.call('HDEL', K.reads, user)
    removed[#removed + 1] = user
  end
end
return removed
`);

/* What `user` may do in the room: 0 it is open, 1 a member, 2 not a member of a members-only room. */
const MEMBER_ACCESS = luaScript(ROOM_KEYS, ['user'], CONVERSATION, `
if not membersOnly() then return 0 end
return isMember(A.user) and 1 or 2
`);

/*
 * A page of the stored members by id after `after` ('' from the start), up to
 * `limit` + 1 (one more tells that a next page exists): {count, users}.
 */
const MEMBERS_PAGE = luaScript(['members'], ['after', 'limit'], `
local start = A.after == '' and '-' or '(' .. A.after
return { redis.call('ZCARD', K.members), redis.call('ZRANGE', K.members, start, '+', 'BYLEX', 'LIMIT', 0, tonumber(A.limit) + 1) }
`);

/*
 * Moves a member's read position forward to `id` (never back). Returns {0} for a
 * non-member, {-1, newest} for an id after the room's newest message, else
 * {1, read id, read number, total, moved, deleted numbers after it...}.
 */
const READ_MOVE = luaScript(ROOM_KEYS, ['user', 'id'], ID_ORDER, CONVERSATION, `
local at = position(A.user)
if not at then return { 0 } end
local newest = newestId()
if newer(A.id, newest) then return { -1, newest } end
local moved = 0
if newer(A.id, at[1]) then
  at = { A.id, math.max(at[2], numberAt(A.id)) }
  redis.call('HSET', K.reads, A.user, at[1] .. '|' .. at[2])
  moved = 1
end
local out = { 1, at[1], at[2], total(), moved }
for _, n in ipairs(deletedAfter(at[2])) do out[#out + 1] = n end
return out
`);

/*
 * One room of a user's list: {total, read position ('' for a non-member),
 * pair ('' if none), {id, current body} of the newest message (or empty), deleted numbers after the position}.
 */
const CONVERSATION_STATE = luaScript(ROOM_KEYS, ['user'], ID_ORDER, CONVERSATION, MARKS, CURRENT, `
local at = position(A.user)
local newest = newestMessage()
local last = newest and { newest[1], current(newest[1], field(newest[2], 'b'), '') } or {}
return { total(), redis.call('HGET', K.reads, A.user) or '', redis.call('HGET', K.conv, 'pair') or '', last, at and deletedAfter(at[2]) or {} }
`);

/* The numbers of the room's deleted messages after `number`. */
const DELETED_AFTER = luaScript(ROOM_KEYS, ['number'], CONVERSATION, `
return deletedAfter(tonumber(A.number))
`);

/* Lists a room in a user's index, scored with Redis's clock (ms) so `unlist` can tell how long ago. */
const INDEX_LIST = luaScript(['index'], ['room'], `
local t = redis.call('TIME')
return redis.call('ZADD', K.index, tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), A.room)
`);

/*
 * Drops from a user's index the given rooms listed longer ago than `grace` ms
 * (Redis's clock); a fresher listing may belong to an add under way. Returns how many went.
 */
const INDEX_UNLIST = luaScript(['index'], ['grace'], `
local t = redis.call('TIME')
local before = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(A.grace)
local gone = 0
for i = 2, #ARGV do
  local at = redis.call('ZSCORE', K.index, ARGV[i])
  if at and tonumber(at) <= before then gone = gone + redis.call('ZREM', K.index, ARGV[i]) end
end
return gone
`);

/* Takes up to `limit` rooms whose time has come (Redis clock) out of a due set: {left in the set, rooms}. */
const UNREAD_CLAIM = luaScript(['due'], ['limit'], `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rooms = redis.call('ZRANGE', K.due, '-inf', now, 'BYSCORE', 'LIMIT', 0, tonumber(A.limit))
if #rooms > 0 then redis.call('ZREM', K.due, unpack(rooms)) end
return { redis.call('ZCARD', K.due), rooms }
`);

/*
 * Records member.unread for each of `users` (',' separated: members with no
 * connection anywhere, as the caller found) who is a member with unread
 * messages. `head` + the newest message's id and body is its frame. Returns how many.
 */
const UNREAD_NOTIFY = luaScript([...ROOM_KEYS, 'events'], ['room', 'head', 'users'], ID_ORDER, CONVERSATION, MARKS, CURRENT, EVENTS, `
local newest = newestMessage()
if not newest then return 0 end
local pair = redis.call('HGET', K.conv, 'pair')
local last = A.head .. newest[1] .. current(newest[1], field(newest[2], 'b'), '')
local ev = events(K.events, ARGV, EVENT_ARGS)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local told = 0
for user in string.gmatch(A.users, '[^,]+') do
  local at = position(user)
  local count = at and unread(at) or 0
  if count > 0 then
    local with = ''
    if pair then
      local bar = string.find(pair, '|', 1, true)
      local first = string.sub(pair, 1, bar - 1)
      with = ',"with":' .. cjson.encode(first == user and string.sub(pair, bar + 1) or first)
    end
    emit(ev, now, 'member.unread', '{"room":' .. cjson.encode(A.room) .. ',"user":' .. cjson.encode(user) .. ',"unread":' .. count
      .. ',"read":"' .. at[1] .. '","last":' .. last .. with .. '}')
    told = told + 1
  end
end
return told
`);

/*
 * Writes a room back as `record` says, only if the room has no record here:
 * `pair` ('' if none), `total`, `last` ('' if none), then `user|id|number`
 * per member. Returns 1 when it wrote.
 */
const CONVERSATION_RESTORE = luaScript(['conv', 'members', 'reads'], ['pair', 'total', 'last'], `
if redis.call('EXISTS', K.conv) == 1 then return 0 end
redis.call('HSET', K.conv, 'mo', '1', 'n', A.total)
if A.pair ~= '' then redis.call('HSET', K.conv, 'pair', A.pair) end
if A.last ~= '' then
  local dash = string.find(A.last, '-', 1, true)
  redis.call('HSET', K.conv, 'last', A.last, 'at', string.sub(A.last, 1, dash - 1) .. '000')
end
for i = 4, #ARGV do
  local a, b = string.find(ARGV[i], '|', 1, true)
  local user = string.sub(ARGV[i], 1, a - 1)
  redis.call('ZADD', K.members, 0, user)
  redis.call('HSET', K.reads, user, string.sub(ARGV[i], b + 1))
end
return 1
`);

/* Each room's `at` (when its newest message was posted), for any number of rooms' conv keys ('' for none). Single Redis only. */
export const ACTIVITY = `
local out = {}
for i = 1, #KEYS do out[i] = redis.call('HGET', KEYS[i], 'at') or '' end
return out
`;

export const CONVERSATION_SCRIPTS = {
  chatConversationRestore: CONVERSATION_RESTORE,
  chatUnreadClaim: UNREAD_CLAIM,
  chatUnreadNotify: UNREAD_NOTIFY,
  chatIndexList: INDEX_LIST,
  chatIndexUnlist: INDEX_UNLIST,
  chatMembersAdd: MEMBERS_ADD,
  chatMembersRemove: MEMBERS_REMOVE,
  chatMemberAccess: MEMBER_ACCESS,
  chatMembersPage: MEMBERS_PAGE,
  chatReadMove: READ_MOVE,
  chatDeletedAfter: DELETED_AFTER,
  chatConversationState: CONVERSATION_STATE,
};

/** The keys of ROOM_KEYS, in order (KeySpace.conversation). */
export type RoomKeys = [conv: string, members: string, reads: string, stream: string, marks: string, changes: string];

export interface ConversationScripts {
  /** The number of keys comes first (defined without a fixed count). */
  chatActivity(numberOfKeys: number, ...conv: string[]): Promise<string[]>;
  chatConversationRestore(conv: string, members: string, reads: string, pair: string, total: number, last: string, ...entries: string[]): Promise<number>;
  chatUnreadClaim(due: string, limit: number): Promise<[left: number, rooms: string[]]>;
  chatUnreadNotify(...args: [...RoomKeys, events: string, room: string, head: string, users: string, ...eventArgs: [string, string, number | '', string]]): Promise<number>;
  chatIndexList(index: string, room: string): Promise<number>;
  chatIndexUnlist(index: string, graceMs: number, ...rooms: string[]): Promise<number>;
  chatMembersAdd(...args: [...RoomKeys, users: string, pair: string]): Promise<[-1] | [1, ...added: string[]]>;
  chatMembersRemove(...args: [...RoomKeys, users: string]): Promise<string[]>;
  chatMemberAccess(...args: [...RoomKeys, user: string]): Promise<0 | 1 | 2>;
  chatMembersPage(members: string, after: string, limit: number): Promise<[count: number, users: string[]]>;
  chatReadMove(...args: [...RoomKeys, user: string, id: string]): Promise<[0] | [-1, newest: string] | [1, read: string, number: number, total: number, moved: number, ...deleted: number[]]>;
  chatConversationState(...args: [...RoomKeys, user: string]): Promise<[total: number, read: string, pair: string, newest: [id: string, body: string] | [], deleted: number[]]>;
  chatDeletedAfter(...args: [...RoomKeys, number: number]): Promise<number[]>;
}
