import { EVENTS } from './event-scripts.js';

/*
 * Room presence. Per room: a sorted set of node incarnations with their expiry,
 * a hash per incarnation (user -> connections joined through it), a hash user ->
 * number of incarnations that have them, and the epoch (microseconds, Redis
 * clock) at which the room last became occupied, which orders the room index's
 * adds and prunes. Time is Redis's own, so gateway clocks cannot disagree about
 * expiry. Every change and heartbeat reaps incarnations that stopped
 * heartbeating, announcing `offline` for users present nowhere else. Events:
 * member.joined / member.left and room.occupied / room.vacated, recorded in the
 * step that decides them.
 */
const NOW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local nowUs = string.format('%.0f', tonumber(t[1]) * 1000000 + tonumber(t[2]))
`;

const ROOM = NOW + EVENTS + `
local function usersOf(key)
  if redis.call('TYPE', key).ok == 'set' then return redis.call('SMEMBERS', key) end -- written by an older version
  return redis.call('HKEYS', key)
end
-- Takes one incarnation's hold of a user away; returns true when that emptied the room.
local function withdraw(users, user, pub, channel, ev, room)
  if redis.call('HINCRBY', users, user, -1) > 0 then return false end
  redis.call('HDEL', users, user)
  redis.call(pub, channel, 'p|-|' .. user)
  emit(ev, now, 'member.left', memberData(room, user))
  if redis.call('EXISTS', users) == 1 then return false end
  emit(ev, now, 'room.vacated', roomData(room))
  return true
end
local function reap(nodes, users, nodePrefix, pub, channel, ev, room)
  local vacated = false
  for _, node in ipairs(redis.call('ZRANGEBYSCORE', nodes, '-inf', now)) do
    local key = nodePrefix .. node
    for _, user in ipairs(usersOf(key)) do
      if withdraw(users, user, pub, channel, ev, room) then vacated = true end
    end
    redis.call('DEL', key)
    redis.call('ZREM', nodes, node)
  end
  return vacated
end
local function epochOf(key)
  return redis.call('GET', key) or '0'
end
`;

/*
 * Sets how many of a user's connections are joined to the room through this
 * incarnation (0 withdraws them). count > 0 returns {fresh, epoch, members}: fresh
 * is 1 when the incarnation did not have the user before. count = 0 returns
 * {vacated, epoch}: vacated is 1 when the room is empty now.
 * KEYS: nodes, users, own node hash, epoch, event stream
 * ARGV: node, user, count, ttl, key ttl, node prefix, channel, publish command, room, events (4)
 */
export const PRESENCE_SET = ROOM + `
local ev = events(KEYS[5], ARGV, 10)
local room, user, count = ARGV[9], ARGV[2], tonumber(ARGV[3])
local vacated = reap(KEYS[1], KEYS[2], ARGV[6], ARGV[8], ARGV[7], ev, room)
if count > 0 then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), ARGV[1])
  local fresh = redis.call('HSET', KEYS[3], user, count)
  if fresh == 1 and redis.call('HINCRBY', KEYS[2], user, 1) == 1 then
    redis.call(ARGV[8], ARGV[7], 'p|+|' .. user)
    if redis.call('HLEN', KEYS[2]) == 1 then
      redis.call('SET', KEYS[4], nowUs)
      emit(ev, now, 'room.occupied', roomData(room))
    end
    emit(ev, now, 'member.joined', memberData(room, user))
  end
  for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], ARGV[5]) end
  return { fresh, epochOf(KEYS[4]), redis.call('HKEYS', KEYS[2]) }
end
if redis.call('HDEL', KEYS[3], user) == 1 and withdraw(KEYS[2], user, ARGV[8], ARGV[7], ev, room) then vacated = true end
if redis.call('EXISTS', KEYS[3]) == 0 then redis.call('ZREM', KEYS[1], ARGV[1]) end
return { vacated and 1 or 0, epochOf(KEYS[4]) }
`;

/*
 * Refreshes this incarnation and reaps dead ones. Returns {alive, vacated, epoch}:
 * alive is 0 when this incarnation was itself reaped (or Redis lost it), and the
 * caller then announces its users again.
 * KEYS: nodes, users, own node hash, epoch, event stream
 * ARGV: node, ttl, key ttl, node prefix, channel, publish command, room, events (4)
 */
export const PRESENCE_HEARTBEAT = ROOM + `
local ev = events(KEYS[5], ARGV, 8)
local alive = redis.call('ZSCORE', KEYS[1], ARGV[1]) ~= false and redis.call('EXISTS', KEYS[3]) == 1
if alive then redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1]) end
local vacated = reap(KEYS[1], KEYS[2], ARGV[4], ARGV[6], ARGV[5], ev, ARGV[7])
if alive then for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], ARGV[3]) end end
return { alive and 1 or 0, vacated and 1 or 0, epochOf(KEYS[4]) }
`;

/*
 * Withdraws every user of this incarnation (graceful shutdown). Returns {vacated, epoch}.
 * KEYS: nodes, users, own node hash, epoch, event stream
 * ARGV: node, channel, publish command, room, events (4)
 */
export const PRESENCE_NODE_LEAVE = ROOM + `
local ev = events(KEYS[5], ARGV, 5)
local vacated = false
for _, user in ipairs(usersOf(KEYS[3])) do
  if withdraw(KEYS[2], user, ARGV[3], ARGV[2], ev, ARGV[4]) then vacated = true end
end
redis.call('DEL', KEYS[3])
redis.call('ZREM', KEYS[1], ARGV[1])
return { vacated and 1 or 0, epochOf(KEYS[4]) }
`;

/*
 * The room's members and their connections, summed over its incarnations, as
 * {user, count, user, count...}. KEYS: nodes. ARGV: node prefix
 */
export const PRESENCE_MEMBERS = `
local counts, order = {}, {}
for _, node in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local key = ARGV[1] .. node
  local flat = redis.call('TYPE', key).ok == 'hash' and redis.call('HGETALL', key) or {}
  for i = 1, #flat, 2 do
    local user = flat[i]
    if counts[user] == nil then order[#order + 1] = user; counts[user] = 0 end
    counts[user] = counts[user] + tonumber(flat[i + 1])
  end
end
local out = {}
for _, user in ipairs(order) do out[#out + 1] = user; out[#out + 1] = counts[user] end
return out
`;

/*
 * For the room index: the room's member count and its epoch; a room whose
 * epoch is gone has been empty for long, and any later occupancy is newer than
 * now, which then stands in for it. KEYS: users, epoch
 */
export const ROOM_OCCUPANCY = NOW + `
return { redis.call('HLEN', KEYS[1]), redis.call('GET', KEYS[2]) or nowUs }
`;

/*
 * The index of rooms that may be occupied. Adds and prunes come from different
 * nodes in any order; an epoch per room keeps a prune of an older occupancy
 * from removing a newer one. KEYS: index, epochs. ARGV: room, epoch
 */
export const ROOM_INDEX_ADD = `
local seen = redis.call('HGET', KEYS[2], ARGV[1])
if not seen or tonumber(ARGV[2]) > tonumber(seen) then redis.call('HSET', KEYS[2], ARGV[1], ARGV[2]) end
redis.call('ZADD', KEYS[1], 0, ARGV[1])
return 1
`;
export const ROOM_INDEX_PRUNE = `
local seen = redis.call('HGET', KEYS[2], ARGV[1])
if seen and tonumber(seen) > tonumber(ARGV[2]) then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
`;

/*
 * User presence, on the user's slot: a hash incarnation -> the user's
 * connections there, and per incarnation the set of rooms joined through it.
 * Liveness is the node registry's (NODES_HEARTBEAT): whoever finds an
 * incarnation dead sets its count of each of its users to 0 here.
 * Sets the incarnation's count (0 withdraws it and its rooms); records
 * user.online / user.offline when that was the user's first / last anywhere.
 * KEYS: connections, rooms of the incarnation, event stream. ARGV: node, count, user, events (4)
 */
export const USER_SET = NOW + EVENTS + `
local ev = events(KEYS[3], ARGV, 4)
if tonumber(ARGV[2]) > 0 then
  if redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) == 1 and redis.call('HLEN', KEYS[1]) == 1 then
    emit(ev, now, 'user.online', userData(ARGV[3]))
  end
  return 1
end
redis.call('DEL', KEYS[2])
if redis.call('HDEL', KEYS[1], ARGV[1]) == 1 and redis.call('EXISTS', KEYS[1]) == 0 then
  emit(ev, now, 'user.offline', userData(ARGV[3]))
end
return 0
`;

/*
 * The user's connections and rooms over every incarnation: {connections, rooms}.
 * KEYS: connections. ARGV: prefix of the per-incarnation room sets
 */
export const USER_PRESENCE = `
local total, rooms, seen = 0, {}, {}
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  total = total + tonumber(flat[i + 1])
  for _, room in ipairs(redis.call('SMEMBERS', ARGV[1] .. flat[i])) do
    if not seen[room] then seen[room] = true; rooms[#rooms + 1] = room end
  end
end
return { total, rooms }
`;

/*
 * The node registry: refreshes this incarnation, and lists up to 10 that
 * stopped heartbeating. Returns {added, dead}: added is 1 when this
 * incarnation was not registered (first beat, reaped, or Redis lost it).
 * KEYS: nodes. ARGV: node, ttl
 */
export const NODES_HEARTBEAT = NOW + `
local added = redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return { added, redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 10) }
`;
