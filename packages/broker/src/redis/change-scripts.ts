import { settingsConstants, TRIM, type AppendSettings } from './append-script.js';
import { MEMBERS_ONLY } from './conversation-scripts.js';
import { EVENTS } from './event-scripts.js';
import { CURRENT, MARKS } from './change-piece.js';
import { NEWEST_ID, luaConstants, luaScript, type LuaScript } from './lua.js';
import { LOST } from './scripts.js';

/*
 * Changes of a room's messages (see changes.ts), on the room's slot. Per room:
 *   stream   a change is an entry `c` (its frame's body), `k` (edit, delete or
 *            reaction), `t` (the target's id), and for a delete `a` and `s`
 *            (the deleted message's author and ts);
 *   changes  hash: `<id>` -> the message's current body (edited text, or a
 *            tombstone), `<id>|e` -> the ids of its edits' entries,
 *            `<id>|r` -> its reaction counts as a JSON object; `c` -> how many
 *            change entries the stream holds (trimming counts messages only);
 *   marks    sorted set, all scores 0, read by name:
 *            `g|<padded id>|<id>`  a deleted message (its tombstone, in id order),
 *            `x|<padded id>|<id>`  an edit's entry a delete removed (a reader may have been there),
 *            `o|<padded id>|<id>`  a message with something in `changes`,
 *            `r|<id>|<reaction>|<user>`  a reactor: the set that makes reactions unique.
 * A delete XDELs the message and its edits' entries, so no reader finds its
 * text (XDEL only flags an entry: the bytes stay in the stream's node until
 * trimming frees it; an erase writes the stream anew). Pages put its tombstone
 * in its place. What `changes` holds about a message the stream trimmed is
 * forgotten by the room's next change (or erase).
 */

/*
 * What every change script shares (needs LOST, MEMBERS_ONLY, TRIM, MARKS, NEWEST_ID):
 * the target and who may change it, forgetting what trimming left, and storing
 * the change as an entry published like a message. Each script takes only the
 * pieces it uses.
 */
const CHANGE = `
local function author(body) return string.match(body, '^","user":"([^"]*)"') end
local function sentAt(body) return string.match(body, ',"ts":(%d+)}$') end
-- The target message's body and its number in a members-only room (or nil), or nil and why not.
local function target()
  local e = redis.call('XRANGE', K.stream, A.target, A.target)[1]
  if e and e[2][1] == 'b' then return e[2][2], e[2][3] == 'n' and e[2][4] or nil end
  if not e and tombstoned(A.target) then return nil, 'gone' end
  return nil, 'not_found'
end
-- nil when the user may change messages here, else the refusal to return.
local function refused(restrictions)
  if membersOnly() and not isMember(A.user) then return { 'not_member' } end
  if not restrictions then return nil end
  local r = redis.call('HGET', K.moderation, 'r:' .. A.user)
  if r then return { string.sub(r, 1, 1) == 'b' and 'banned' or 'muted', string.sub(r, 3) } end
  return nil
end
-- Drops what changes and marks hold about messages trimmed from the stream, up to max of them.
local function forgetTrimmed(max)
  local trimmed = redis.call('GET', K.trimmed)
  if not trimmed then return 0 end
  redis.call('ZREMRANGEBYLEX', K.marks, '[x|', '(x|' .. padded(trimmed) .. '|~')
  local old = redis.call('ZRANGE', K.marks, '[o|', '(o|' .. padded(trimmed) .. '|~', 'BYLEX', 'LIMIT', 0, max)
  for _, mark in ipairs(old) do
    local id = idOfMark(mark)
    redis.call('HDEL', K.changes, id, id .. '|e', id .. '|r')
    redis.call('ZREMRANGEBYLEX', K.marks, '[r|' .. id .. '|', '(r|' .. id .. '|~')
    redis.call('ZREM', K.marks, mark, 'g|' .. padded(id) .. '|' .. id)
  end
  return #old
end
-- Stores a change as an entry and publishes it with prev, the newest id before the change's own writes.
-- A delete of a counted message is published as one (x|), so nodes take it off unread counts.
local function storeChange(prev, kind, body, deleted)
  if A.lastDelivered ~= '' and A.lastDelivered ~= prev and newer(A.lastDelivered, prev) then raiseLost(K.lost, A.lastDelivered, PUBLISH, A.channel) end
  local id = deleted and redis.call('XADD', K.stream, '*', 'c', body, 'k', kind, 't', deleted.target, 'a', deleted.author, 's', deleted.sentAt)
    or redis.call('XADD', K.stream, '*', 'c', body, 'k', kind, 't', A.target)
  redis.call('HINCRBY', K.changes, 'c', 1)
  trimStream()
  local envelope = deleted and deleted.number and ('x|' .. deleted.number .. '|' .. A.user .. '|') or 'm|'
  redis.call(PUBLISH, A.channel, envelope .. id .. '|' .. prev .. '|' .. A.ts .. '|' .. A.head .. id .. body)
  if ARCHIVE_WAKE and redis.call('SADD', K.archiveSet, A.room) == 1 then redis.call('PUBLISH', ARCHIVE_WAKE, A.room) end
  return id
end
`;

/* A delete's: a message made a tombstone, the events quoting it dropped, a stream written anew (needs CHANGE). */
const BURY = `
-- Drops pending events that quote a deleted message (message.created, member.unread): they hold its text.
-- Returns how many it dropped.
local function dropQuoting(id)
  local dash = string.find(id, '-', 1, true)
  local quote = '"id":"' .. id .. '"'
  local dropped = 0
  for _, e in ipairs(redis.call('XRANGE', K.events, string.sub(id, 1, dash - 1), '+', 'COUNT', 256)) do
    if string.find(e[2][2], quote, 1, true) then dropped = dropped + redis.call('XDEL', K.events, e[1]) end
  end
  return dropped
end
-- XDEL only flags an entry deleted: its bytes stay in the stream's node (and in DUMP, RDB and
-- memory) until the whole node goes. Writing the stream anew leaves only what it holds.
local function rewrite(key)
  local info = redis.call('XINFO', 'STREAM', key)
  local last
  for i = 1, #info, 2 do if info[i] == 'last-generated-id' then last = info[i + 1] end end
  local entries = redis.call('XRANGE', key, '-', '+')
  redis.call('DEL', key)
  for _, e in ipairs(entries) do redis.call('XADD', key, e[1], unpack(e[2])) end
  if #entries > 0 then redis.call('XSETID', key, last) end
end
-- Makes a message a tombstone: its entry and its edits' entries leave the stream, with its reactions;
-- its number (in a members-only room) stops counting, and the room list's preview moves to the newest message left.
local function bury(id, body, number)
  if number then redis.call('ZADD', K.marks, 0, 'd|' .. string.rep('0', 16 - #number) .. number) end
  local p = padded(id)
  redis.call('XDEL', K.stream, id)
  for edit in string.gmatch(redis.call('HGET', K.changes, id .. '|e') or '', '[^,]+') do
    redis.call('HINCRBY', K.changes, 'c', -redis.call('XDEL', K.stream, edit))
    redis.call('ZADD', K.marks, 0, 'x|' .. padded(edit) .. '|' .. edit)
  end
  redis.call('HSET', K.changes, id, '","user":"' .. author(body) .. '","text":"","ts":' .. sentAt(body) .. ',"deleted":true}')
  redis.call('HDEL', K.changes, id .. '|e', id .. '|r')
  redis.call('ZREMRANGEBYLEX', K.marks, '[r|' .. id .. '|', '(r|' .. id .. '|~')
  redis.call('ZADD', K.marks, 0, 'g|' .. p .. '|' .. id, 0, 'o|' .. p .. '|' .. id)
  if redis.call('HGET', K.conv, 'last') == id then
    local last = nil
    for _, e in ipairs(redis.call('XREVRANGE', K.stream, '(' .. id, '-', 'COUNT', 256)) do
      if e[2][1] == 'b' then last = e[1] break end
    end
    if last then redis.call('HSET', K.conv, 'last', last) else redis.call('HDEL', K.conv, 'last') end
  end
  if K.events ~= K.stream then return dropQuoting(id) end
  return 0
end
`;

const CHANGE_KEYS = ['stream', 'trimmed', 'lost', 'changes', 'marks', 'moderation', 'conv', 'members', 'archiveSet', 'archived', 'events'] as const;
const CHANGE_ARGS = ['channel', 'ts', 'head', 'lastDelivered', 'room', 'user', 'target'] as const;

/*
 * An edit by the message's author: an entry with the new text, and the message's
 * current body. Returns {'ok', id}, or a refusal: {'not_found'}, {'gone'},
 * {'not_author'}, {'not_member'}, {'banned'|'muted', reason}.
 */
const EDIT_STEPS = `
local body, why = target()
if not body then return { why } end
local no = refused(true)
if no then return no end
if author(body) ~= A.user then return { 'not_author' } end
local prev = newestId()
forgetTrimmed(16)
local id = storeChange(prev, 'edit', A.body)
local now = '","user":"' .. A.user .. '","text":' .. A.text .. ',"ts":' .. sentAt(body) .. ',"edited":' .. A.ts .. '}'
local edits = redis.call('HGET', K.changes, A.target .. '|e')
redis.call('HSET', K.changes, A.target, now, A.target .. '|e', edits and (edits .. ',' .. id) or id)
redis.call('ZADD', K.marks, 0, 'o|' .. padded(A.target) .. '|' .. A.target)
if ARGV[EVENT_ARGS] then
  local ev = events(K.events, ARGV, EVENT_ARGS)
  emit(ev, tonumber(A.ts), 'message.updated', '{"room":' .. cjson.encode(A.room) .. ',"message":' .. A.messageHead .. A.target .. current(A.target, body, '')
    .. ',"change":' .. A.head .. id .. A.body .. '}')
end
return { 'ok', id }
`;

/*
 * A delete by the author or a moderator (`moderator` '1': by the token; else a
 * stored one). Returns {'ok', id} or a refusal, as EDIT.
 */
const DELETE_STEPS = `
local body, number = target()
if not body then return { number } end
local no = refused(false)
if no then return no end
local by = author(body)
if by ~= A.user and A.moderator ~= '1' and not redis.call('HGET', K.moderation, 'm:' .. A.user) then return { 'not_author' } end
local prev = newestId()
forgetTrimmed(16)
bury(A.target, body, number)
local id = storeChange(prev, 'delete', A.body, { target = A.target, author = by, sentAt = sentAt(body), number = number })
if ARGV[EVENT_ARGS] then
  local ev = events(K.events, ARGV, EVENT_ARGS)
  emit(ev, tonumber(A.ts), 'message.deleted', '{"room":' .. cjson.encode(A.room) .. ',"author":"' .. by .. '","change":' .. A.head .. id .. A.body .. '}')
end
return { 'ok', id }
`;

/*
 * Adds (`op` add) or removes a reaction: the reactor's mark decides, so the count
 * is always the number of reactors. Returns {'ok', id, count}, {'unchanged'},
 * {'too_many'} for one reaction more than MAX_REACTIONS on a message, or a refusal as EDIT.
 */
const REACT_STEPS = `
local body, why = target()
if not body then return { why } end
local no = refused(true)
if no then return no end
local countsField = A.target .. '|r'
local counts = cjson.decode(redis.call('HGET', K.changes, countsField) or '{}')
local reactor = 'r|' .. A.target .. '|' .. A.reaction .. '|' .. A.user
local changed
if A.op == 'add' then
  if not counts[A.reaction] then
    local kinds = 0
    for _ in pairs(counts) do kinds = kinds + 1 end
    if kinds >= MAX_REACTIONS then return { 'too_many' } end
  end
  changed = redis.call('ZADD', K.marks, 'NX', 0, reactor)
else
  changed = redis.call('ZREM', K.marks, reactor)
end
if changed == 0 then return { 'unchanged' } end
local count = redis.call('ZLEXCOUNT', K.marks, '[r|' .. A.target .. '|' .. A.reaction .. '|', '(r|' .. A.target .. '|' .. A.reaction .. '|~')
counts[A.reaction] = count > 0 and count or nil
if next(counts) then
  redis.call('HSET', K.changes, countsField, cjson.encode(counts))
  redis.call('ZADD', K.marks, 0, 'o|' .. padded(A.target) .. '|' .. A.target)
else
  redis.call('HDEL', K.changes, countsField)
end
local prev = newestId()
forgetTrimmed(16)
local id = storeChange(prev, 'reaction', '","target":"' .. A.target .. '","user":"' .. A.user .. '","reaction":"' .. A.reaction
  .. '","op":"' .. A.op .. '","count":' .. count .. ',"ts":' .. A.ts .. '}')
return { 'ok', id, count }
`;

/*
 * Deletes every message of `erased` the stream holds, as deletes by `user`
 * (the actor), and forgets everything trimming left. Unlike a delete, it then
 * writes the stream (and the event stream, if it dropped events) anew, so no
 * byte of the text stays in Redis (see rewrite). Returns {id, sentAt} pairs flattened.
 */
const ERASE_STEPS = `
while forgetTrimmed(256) > 0 do end
local mine = '","user":"' .. A.erased .. '"'
local prev = newestId()
local buried, dropped = {}, 0
for _, e in ipairs(redis.call('XRANGE', K.stream, '-', '+')) do
  local body = e[2][1] == 'b' and e[2][2]
  if body and string.sub(body, 1, #mine) == mine then
    local number = e[2][3] == 'n' and e[2][4] or nil
    dropped = dropped + bury(e[1], body, number)
    buried[#buried + 1] = { e[1], sentAt(body), number }
  end
end
local out = {}
for _, b in ipairs(buried) do
  local body = '","target":"' .. b[1] .. '","user":"' .. A.user .. '","ts":' .. A.ts .. '}'
  prev = storeChange(prev, 'delete', body, { target = b[1], author = A.erased, sentAt = b[2], number = b[3] })
  out[#out + 1] = b[1]
  out[#out + 1] = b[2]
end
if #buried > 0 then rewrite(K.stream) end
if dropped > 0 then rewrite(K.events) end
return out
`;

/** How many different reactions one message may carry. */
export const MAX_REACTIONS = 20;

/** The change scripts of a broker with these settings, for defineCommand. */
export function changeScripts(settings: AppendSettings): Record<string, LuaScript> {
  const common = [settingsConstants(settings), LOST, MEMBERS_ONLY, TRIM, MARKS, NEWEST_ID, CHANGE];
  return {
    chatEdit: luaScript(CHANGE_KEYS, [...CHANGE_ARGS, 'body', 'text', 'messageHead'], ...common, EVENTS, CURRENT, EDIT_STEPS),
    chatDelete: luaScript(CHANGE_KEYS, [...CHANGE_ARGS, 'body', 'moderator'], ...common, EVENTS, BURY, DELETE_STEPS),
    chatReact: luaScript(CHANGE_KEYS, [...CHANGE_ARGS, 'reaction', 'op'], ...common, luaConstants({ MAX_REACTIONS }), REACT_STEPS),
    chatErase: luaScript(CHANGE_KEYS, [...CHANGE_ARGS, 'erased'], ...common, EVENTS, BURY, ERASE_STEPS),
  };
}
