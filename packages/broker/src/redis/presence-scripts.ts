import { EVENTS } from './event-scripts.js';
import { MEMBERS_ONLY } from './conversation-scripts.js';
import { luaScript } from './lua.js';

/*
 * Room presence, on the room's slot. Per room:
 *   present   sorted set of the users present anywhere, all scores 0, so it pages
 *             by id and its size is the room's count (ZCARD: a counter, not a count);
 *   conns     hash user -> connections joined to the room over every node;
 *   hold:<i>  hash user -> connections joined through incarnation i (what is
 *             withdrawn when i dies);
 *   presence  hash: `epoch`, when the room last became occupied (microseconds,
 *             Redis clock; orders the room index's adds and prunes), `conns`,
 *             the room's connections in all, and `seq`, the number of the last
 *             arrival or departure (it expires with the rest once the room is
 *             left empty, and starts again).
 * Nothing here expires or is refreshed while a room is occupied: an idle room
 * costs Redis nothing. Liveness is per incarnation (NODES_HEARTBEAT); whoever
 * finds one dead withdraws its holds room by room (PRESENCE_WITHDRAW).
 * Every change costs O(log N) in a room of N, whatever N is.
 *
 * Each arrival and departure is numbered and announced on the room's channel
 * with the count it left, `p|+|<seq>|<count>|<user>` / `p|-|<seq>|<count>|<user>`,
 * in the order the changes happened, and recorded as member.joined / member.left
 * (room.occupied / room.vacated for the first and the last) in the step that decides it.
 */
const NOW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local nowUs = string.format('%.0f', tonumber(t[1]) * 1000000 + tonumber(t[2]))
`;

/*
 * move(user, delta): changes a user's connections in the room by delta and
 * announces the user's arrival (none before) or departure (none left).
 * Returns the room's count afterwards (-1 when neither). Needs K.present,
 * K.conns, K.state, K.events and A.channel, A.publish, A.room, A.stateTtl.
 */
const MOVE = NOW + EVENTS + `
local ev = events(K.events, ARGV, EVENT_ARGS)
local function move(user, delta)
  local before = tonumber(redis.call('HGET', K.conns, user) or '0')
  local after = math.max(0, before + delta)
  if after == before then return -1 end
  if after > 0 then redis.call('HSET', K.conns, user, after) else redis.call('HDEL', K.conns, user) end
  redis.call('HINCRBY', K.state, 'conns', after - before)
  if (before > 0) == (after > 0) then return -1 end
  if after > 0 then
    redis.call('ZADD', K.present, 0, user)
    local count = redis.call('ZCARD', K.present)
    if count == 1 then
      redis.call('HSET', K.state, 'epoch', nowUs)
      redis.call('PERSIST', K.state)
      emit(ev, now, 'room.occupied', roomData(A.room))
    end
    redis.call(A.publish, A.channel, 'p|+|' .. redis.call('HINCRBY', K.state, 'seq', 1) .. '|' .. count .. '|' .. user)
    emit(ev, now, 'member.joined', memberData(A.room, user))
    return count
  end
  redis.call('ZREM', K.present, user)
  local count = redis.call('ZCARD', K.present)
  redis.call(A.publish, A.channel, 'p|-|' .. redis.call('HINCRBY', K.state, 'seq', 1) .. '|' .. count .. '|' .. user)
  emit(ev, now, 'member.left', memberData(A.room, user))
  if count == 0 then
    emit(ev, now, 'room.vacated', roomData(A.room))
    redis.call('PEXPIRE', K.state, A.stateTtl)
  end
  return count
end
local function hold(user, connections)
  local held = tonumber(redis.call('HGET', K.hold, user) or '0')
  if connections > 0 then redis.call('HSET', K.hold, user, connections) else redis.call('HDEL', K.hold, user) end
  return move(user, connections - held), held
end
local function epoch() return redis.call('HGET', K.state, 'epoch') or '0' end
local function seq() return tonumber(redis.call('HGET', K.state, 'seq') or '0') end
`;

const ROOM_KEYS = ['present', 'conns', 'hold', 'state', 'events'] as const;
const ROOM_ARGS = ['channel', 'publish', 'room', 'stateTtl'] as const;

/*
 * Sets how many of a user's connections are joined to the room through this
 * incarnation (0 withdraws them). With connections > 0 returns {fresh, epoch,
 * count, first, seq}: fresh is 1 when this incarnation did not hold the user before,
 * first the room's first `list` users by id, seq the room's last change. With 0
 * returns {count, epoch}. A user who is not a member of a members-only room
 * gains no connection there: {-1}, and nothing is written; nor does a user a
 * moderator banned from the room: {-2, reason}.
 */
export const PRESENCE_SET = luaScript([...ROOM_KEYS, 'conv', 'members', 'moderation'], [...ROOM_ARGS, 'user', 'connections', 'list'], MOVE, MEMBERS_ONLY, `
local connections = tonumber(A.connections)
if connections > tonumber(redis.call('HGET', K.hold, A.user) or '0') then
  if membersOnly() and not isMember(A.user) then return { -1 } end
  local restricted = redis.call('HGET', K.moderation, 'r:' .. A.user)
  if restricted and string.sub(restricted, 1, 1) == 'b' then return { -2, string.sub(restricted, 3) } end
end
local _, held = hold(A.user, connections)
if connections == 0 then return { redis.call('ZCARD', K.present), epoch() } end
local list = tonumber(A.list)
local first = list > 0 and redis.call('ZRANGE', K.present, 0, list - 1) or {}
return { held == 0 and 1 or 0, epoch(), redis.call('ZCARD', K.present), first, seq() }
`);

/*
 * Makes this incarnation's holds in the room exactly `holds` ("user=n,user=n",
 * names never hold ',' or '='), as written again after Redis lost some of them
 * or a write failed. Returns {count, epoch}.
 */
export const PRESENCE_SYNC = luaScript(ROOM_KEYS, [...ROOM_ARGS, 'holds'], MOVE, `
local want = {}
for user, n in string.gmatch(A.holds, '([^,=]+)=(%d+)') do want[user] = tonumber(n) end
for _, user in ipairs(redis.call('HKEYS', K.hold)) do
  if want[user] == nil then hold(user, 0) end
end
for user, n in pairs(want) do hold(user, n) end
return { redis.call('ZCARD', K.present), epoch() }
`);

/*
 * Withdraws up to `batch` users of an incarnation from the room (one that died,
 * or this one shutting down), so a big room is withdrawn in steps that keep
 * Redis responsive. Returns {held, count, epoch}: held is what the incarnation
 * still holds there (call again while it is above 0).
 */
export const PRESENCE_WITHDRAW = luaScript(ROOM_KEYS, [...ROOM_ARGS, 'batch'], MOVE, `
local some = redis.call('HRANDFIELD', K.hold, tonumber(A.batch), 'WITHVALUES')
for i = 1, #some, 2 do
  redis.call('HDEL', K.hold, some[i])
  move(some[i], -tonumber(some[i + 1]))
end
return { redis.call('HLEN', K.hold), redis.call('ZCARD', K.present), epoch() }
`);

/*
 * A page of the room's users by id, after `after` ('' from the start): {count,
 * users, connections}, up to `limit` + 1 users (one more tells that a next page
 * exists); connections (each user's, over every node) only when `withConnections` is 1.
 */
export const PRESENCE_PAGE = luaScript(['present', 'conns'], ['after', 'limit', 'withConnections'], `
local start = A.after == '' and '-' or '(' .. A.after
local users = redis.call('ZRANGE', K.present, start, '+', 'BYLEX', 'LIMIT', 0, tonumber(A.limit) + 1)
local connections = {}
if A.withConnections == '1' and #users > 0 then connections = redis.call('HMGET', K.conns, unpack(users)) end
return { redis.call('ZCARD', K.present), users, connections }
`);

/*
 * For the room index: the room's count, its connections and its epoch; a room
 * whose epoch is gone has been empty for long, and any later occupancy is
 * newer than now, which then stands in for it.
 */
export const ROOM_OCCUPANCY = luaScript(['present', 'state'], [], NOW, `
return { redis.call('ZCARD', K.present), tonumber(redis.call('HGET', K.state, 'conns') or '0'), redis.call('HGET', K.state, 'epoch') or nowUs }
`);

/*
 * The index of rooms that may be occupied. Adds and prunes come from different
 * nodes in any order; an epoch per room keeps a prune of an older occupancy
 * from removing a newer one.
 */
export const ROOM_INDEX_ADD = luaScript(['index', 'epochs'], ['room', 'epoch'], `
local seen = redis.call('HGET', K.epochs, A.room)
if not seen or tonumber(A.epoch) > tonumber(seen) then redis.call('HSET', K.epochs, A.room, A.epoch) end
redis.call('ZADD', K.index, 0, A.room)
return 1
`);
export const ROOM_INDEX_PRUNE = luaScript(['index', 'epochs'], ['room', 'epoch'], `
local seen = redis.call('HGET', K.epochs, A.room)
if seen and tonumber(seen) > tonumber(A.epoch) then return 0 end
redis.call('HDEL', K.epochs, A.room)
redis.call('ZREM', K.index, A.room)
return 1
`);

/*
 * User presence, on the user's slot: a hash incarnation -> the user's
 * connections there, and per incarnation the set of rooms joined through it.
 * Liveness is the node registry's (NODES_HEARTBEAT): whoever finds an
 * incarnation dead sets its count of each of its users to 0 here.
 * Sets the incarnation's count (0 withdraws it and its rooms); records
 * user.online / user.offline when that was the user's first / last anywhere.
 */
export const USER_SET = luaScript(['connections', 'rooms', 'events'], ['node', 'count', 'user'], NOW, EVENTS, `
local ev = events(K.events, ARGV, EVENT_ARGS)
if tonumber(A.count) > 0 then
  if redis.call('HSET', K.connections, A.node, A.count) == 1 and redis.call('HLEN', K.connections) == 1 then
    emit(ev, now, 'user.online', userData(A.user))
  end
  return 1
end
redis.call('DEL', K.rooms)
if redis.call('HDEL', K.connections, A.node) == 1 and redis.call('EXISTS', K.connections) == 0 then
  emit(ev, now, 'user.offline', userData(A.user))
end
return 0
`);

/* The user's connections and rooms over every incarnation: {connections, rooms}. */
export const USER_PRESENCE = luaScript(['connections'], ['roomsPrefix'], `
local total, rooms, seen = 0, {}, {}
local flat = redis.call('HGETALL', K.connections)
for i = 1, #flat, 2 do
  total = total + tonumber(flat[i + 1])
  for _, room in ipairs(redis.call('SMEMBERS', A.roomsPrefix .. flat[i])) do
    if not seen[room] then seen[room] = true; rooms[#rooms + 1] = room end
  end
end
return { total, rooms }
`);

/*
 * The node registry: refreshes this incarnation, and hands out up to 10 that
 * stopped heartbeating, each to one reaper at a time (a lease of `reapMs` in
 * `reaping`, so a reaper that dies mid-way is followed by another). Returns
 * {added, dead}: added is 1 when this incarnation was not registered (first
 * beat, reaped, or Redis lost it).
 */
export const NODES_HEARTBEAT = luaScript(['nodes', 'reaping'], ['node', 'ttl', 'reapMs'], NOW, `
local added = redis.call('ZADD', K.nodes, now + tonumber(A.ttl), A.node)
local claimed = {}
for _, node in ipairs(redis.call('ZRANGEBYSCORE', K.nodes, '-inf', now, 'LIMIT', 0, 10)) do
  local lease = redis.call('ZSCORE', K.reaping, node)
  if not lease or tonumber(lease) <= now then
    redis.call('ZADD', K.reaping, now + tonumber(A.reapMs), node)
    claimed[#claimed + 1] = node
  end
end
return { added, claimed }
`);

/* Takes a reaped incarnation out of the registry, and its lease with it. */
export const NODES_FORGET = luaScript(['nodes', 'reaping'], ['node'], `
redis.call('ZREM', K.reaping, A.node)
return redis.call('ZREM', K.nodes, A.node)
`);
