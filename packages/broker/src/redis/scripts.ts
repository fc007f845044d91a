import type { Cluster, Redis } from 'ioredis';
import { REVOKE } from './revocation-scripts.js';
import { CONVERSATION_SCRIPTS, MEMBERS_ONLY, type ConversationScripts } from './conversation-scripts.js';
import { EVENTS, EVENTS_ACK, EVENTS_BACKLOG, EVENTS_CLAIM, EVENTS_RELEASE } from './event-scripts.js';
import { ID_ORDER, luaScript, type LuaScript } from './lua.js';
import {
  NODES_FORGET, NODES_HEARTBEAT, PRESENCE_PAGE, PRESENCE_SET, PRESENCE_SYNC, PRESENCE_WITHDRAW,
  ROOM_INDEX_ADD, ROOM_INDEX_PRUNE, ROOM_OCCUPANCY, USER_PRESENCE, USER_SET,
} from './presence-scripts.js';

/*
 * raiseLost raises a room's lost-marker to an id (never lowers it) and, when it
 * rose, tells the room's subscribers, ahead of anything published after it.
 */
const LOST = ID_ORDER + `
local function raiseLost(key, id, pub, channel)
  local current = redis.call('GET', key)
  if current and not newer(id, current) then return 0 end
  redis.call('SET', key, id)
  redis.call(pub, channel, 'l|' .. id)
  return 1
end
`;

/*
 * seen(key, ttl) is the record of an idempotency key: {id, ts, 1} of the first
 * message when there is one (its expiry renewed), else nil.
 */
const ONCE = `
local function seen(key, ttl)
  local first = redis.call('GET', key)
  if not first then return nil end
  redis.call('PEXPIRE', key, ttl)
  local bar = string.find(first, '|', 1, true)
  return { string.sub(first, 1, bar - 1), string.sub(first, bar + 1), 1 }
end
`;

/*
 * Appends a message and publishes it in one atomic step, with the id of the
 * message before it, so a subscriber can tell it missed one. The publish order
 * of a room is its stream order. Trims in batches and records the newest
 * trimmed id: MAXLEN trimming does not update the stream's own
 * max-deleted-entry-id, and `after()` needs it to say whether a gap is complete.
 * Every stream entry is a message, so the stream's length counts messages.
 * When the sender's node delivered an id newer than anything stored, the stream
 * lost it (a restart, a failover): that is marked, and announced, first.
 *
 * flags: `k` the append has an idempotency key, `a` the archive is on, `u` offline
 * members are told of unread messages (a members-only room becomes due for that
 * `unreadWindow` ms after its first message since it was last due; see offline-notices.ts).
 * With an idempotency key already recorded, nothing is appended: the first
 * message's id and ts come back, and the record's expiry is renewed (a write,
 * so a WAIT after the script also covers the first append). Returns {id, ts, 0},
 * {id, ts, 1} for a repeat, {'', '', 2} when the sender is not a member of a members-only room.
 *
 * In a members-only room the message is numbered (see conversation-scripts.ts), the
 * sender's read position moves to it, and it is published as
 * `n|<number>|<user>|...` so nodes can tell members their unread counts.
 *
 * With the archive on, the room joins its slot's set of rooms to archive, and a
 * room that was not in it is announced on the archive's wake channel. Trimming
 * then keeps what the archive has not taken yet (up to its watermark), up to
 * `hold` messages beyond the history size: an archiver that is behind or down
 * loses nothing until then, and what it finds trimmed it records as lost.
 * message.created is recorded when event recording asks for it.
 */
export const APPEND = luaScript(
  ['stream', 'trimmed', 'lost', 'once', 'archiveSet', 'archived', 'events', 'conv', 'members', 'reads', 'unreadDue'],
  [
    'channel', 'historySize', 'trimBatch', 'ts', 'head', 'body', 'publish', 'lastDelivered', 'onceTtl', 'archiveWake', 'room', 'hold', 'user', 'flags',
    'unreadWindow', 'unreadWake',
  ],
  LOST, ONCE, EVENTS, MEMBERS_ONLY, `
local function flag(f) return string.find(A.flags, f, 1, true) ~= nil end
local counted = membersOnly()
if counted and not isMember(A.user) then return { '', '', 2 } end
local first = flag('k') and seen(K.once, A.onceTtl)
if first then return first end
local last = redis.call('XREVRANGE', K.stream, '+', '-', 'COUNT', 1)[1]
local prev = last and last[1] or '0-0'
if A.lastDelivered ~= '' and A.lastDelivered ~= prev and newer(A.lastDelivered, prev) then raiseLost(K.lost, A.lastDelivered, A.publish, A.channel) end
local number = counted and redis.call('HINCRBY', K.conv, 'n', 1)
local id = number and redis.call('XADD', K.stream, '*', 'b', A.body, 'n', number) or redis.call('XADD', K.stream, '*', 'b', A.body)
local excess = redis.call('XLEN', K.stream) - tonumber(A.historySize)
if excess >= tonumber(A.trimBatch) then
  if flag('a') then
    local archived = #redis.call('XRANGE', K.stream, '-', redis.call('GET', K.archived) or '0-0', 'COUNT', excess)
    excess = math.max(archived, excess - tonumber(A.hold))
  end
  if excess >= tonumber(A.trimBatch) then
    local cut = redis.call('XRANGE', K.stream, '-', '+', 'COUNT', excess + 1)
    redis.call('XTRIM', K.stream, 'MINID', cut[#cut][1])
    redis.call('SET', K.trimmed, cut[#cut - 1][1])
  end
end
local frame = A.head .. id .. A.body
if number then
  redis.call('HSET', K.reads, A.user, id .. '|' .. number)
  local t = redis.call('TIME')
  redis.call('HSET', K.conv, 'last', id, 'at', t[1] .. string.format('%06d', tonumber(t[2])))
  redis.call(A.publish, A.channel, 'n|' .. number .. '|' .. A.user .. '|' .. id .. '|' .. prev .. '|' .. A.ts .. '|' .. frame)
  if flag('u') then
    local due = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(A.unreadWindow)
    if redis.call('ZADD', K.unreadDue, 'NX', due, A.room) == 1 and redis.call('ZCARD', K.unreadDue) == 1 then
      redis.call('PUBLISH', A.unreadWake, K.unreadDue)
    end
  end
else
  redis.call(A.publish, A.channel, 'm|' .. id .. '|' .. prev .. '|' .. A.ts .. '|' .. frame)
end
if flag('k') then redis.call('SET', K.once, id .. '|' .. A.ts, 'PX', A.onceTtl) end
if flag('a') and redis.call('SADD', K.archiveSet, A.room) == 1 then redis.call('PUBLISH', A.archiveWake, A.room) end
local ev = events(K.events, ARGV, EVENT_ARGS)
if wants(ev, 'message.created') then
  emit(ev, tonumber(A.ts), 'message.created', '{"room":' .. cjson.encode(A.room) .. ',"message":' .. frame .. '}')
end
return { id, A.ts, 0 }
`);

/*
 * Reads the newest messages after an id atomically with what proves (or
 * disproves) continuity from it: the trimmed and lost markers, whether the id
 * itself is stored, and the newest id.
 * KEYS: stream, trimmed-marker, lost-marker
 * ARGV: the id, exclusive start id (the id, or one below the largest), count
 */
const AFTER = `
local trimmed = redis.call('GET', KEYS[2]) or '0-0'
local lost = redis.call('GET', KEYS[3]) or '0-0'
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
local stored = #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
return { trimmed, lost, newest and newest[1] or '0-0', stored, redis.call('XREVRANGE', KEYS[1], '+', '(' .. ARGV[2], 'COUNT', ARGV[3]) }
`;

/*
 * For the archiver, in one round trip: the room's lease for `owner` (taken when
 * free, renewed when held), and when held, the oldest `count` messages after an
 * id with what proves continuity from it (as AFTER) and the newest id.
 * Returns {0} when another owner holds the lease, else {1, trimmed, lost, newest, stored, entries}.
 * The id read after is the archive's watermark: the append script trims nothing newer.
 * KEYS: lease, stream, trimmed-marker, lost-marker, archive watermark. ARGV: owner, lease ttl ms, the id, count
 */
const ARCHIVE_CLAIM = `
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return { 0 } end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SET', KEYS[5], ARGV[3])
local trimmed = redis.call('GET', KEYS[3]) or '0-0'
local lost = redis.call('GET', KEYS[4]) or '0-0'
local newest = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)[1]
local stored = #redis.call('XRANGE', KEYS[2], ARGV[3], ARGV[3])
return { 1, trimmed, lost, newest and newest[1] or '0-0', stored, redis.call('XRANGE', KEYS[2], '(' .. ARGV[3], '+', 'COUNT', ARGV[4]) }
`;

/*
 * For the archiver, when done with a room: it leaves the set of rooms to archive
 * unless something newer than `through` is stored (an append since re-adds it),
 * and `owner` gives its lease up. Returns 1 if the room left the set.
 * `through` is the archive's new watermark.
 * KEYS: stream, archive set, lease, archive watermark. ARGV: through, room, owner
 */
const ARCHIVE_DONE = LOST + `
if redis.call('GET', KEYS[3]) == ARGV[3] then redis.call('DEL', KEYS[3]) end
redis.call('SET', KEYS[4], ARGV[1])
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
if newest and newer(newest[1], ARGV[1]) then return 0 end
return redis.call('SREM', KEYS[2], ARGV[2])
`;

/*
 * The newest id and the lost-marker, together.
 * KEYS: stream, lost-marker
 */
const HEAD = `
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
return { newest and newest[1] or '0-0', redis.call('GET', KEYS[2]) or '0-0' }
`;

/*
 * Raises a room's lost-marker; returns 1 when it rose.
 * KEYS: lost-marker. ARGV: id, channel, publish command
 */
const MARK_LOST = LOST + `
return raiseLost(KEYS[1], ARGV[1], ARGV[3], ARGV[2])
`;

/*
 * A direct message: an id from the recipient's (always empty) sequence stream,
 * then a publish whose receiver count says whether the user is connected anywhere.
 * With an idempotency key: a repeat of one that reached someone is not sent again.
 * Returns {id, ts, repeat, receivers}.
 * KEYS: sequence stream, idempotency record (the sequence stream when none)
 * ARGV: channel, head, body, key ttl, publish command, ts, idempotency ttl in ms ('' when none)
 */
const DIRECT = ONCE + `
local first = ARGV[7] ~= '' and seen(KEYS[2], ARGV[7])
if first then return { first[1], first[2], 1, 0 } end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '0', '*', 'x', '')
redis.call('PEXPIRE', KEYS[1], ARGV[4])
local receivers = redis.call(ARGV[5], ARGV[1], 'd|' .. ARGV[2] .. id .. ARGV[3])
if ARGV[7] ~= '' and receivers > 0 then redis.call('SET', KEYS[2], id .. '|' .. ARGV[6], 'PX', ARGV[7]) end
return { id, ARGV[6], 0, receivers }
`;

export type RawEntry = [id: string, fields: string[]];

export type AppendKeys = [
  stream: string, trimmed: string, lost: string, once: string, archiveSet: string, archived: string, events: string,
  conv: string, members: string, reads: string, unreadDue: string,
];
export type AppendArgv = [
  channel: string, historySize: number, trimBatch: number, ts: number, head: string, body: string, publish: string,
  lastDelivered: string, onceTtlMs: number | '', archiveWake: string, room: string, archiveHold: number | '', user: string, flags: string,
  unreadWindowMs: number | '', unreadWake: string,
];

/** Keys and arguments of the room presence scripts (see presence-scripts.ts). */
export type PresenceKeys = [present: string, conns: string, hold: string, state: string, events: string];
export type PresenceArgv = [channel: string, publish: string, room: string, stateTtlMs: number];

/** The four event arguments every recording script ends with (see EVENTS): types, wake channel, backlog limit, nonce. */
export type EventArgs = [types: string, wake: string, limit: number | '', nonce: string];

export interface ChatScripts extends ConversationScripts {
  /** repeat: 0 stored, 1 a repeat of a stored one, 2 refused (not a member of a members-only room). */
  chatAppend(...args: [...keys: AppendKeys, ...argv: AppendArgv, ...eventArgs: EventArgs]): Promise<[id: string, ts: string, repeat: number]>;
  chatAfter(
    stream: string, trimmed: string, lost: string, after: string, start: string, count: number,
  ): Promise<[trimmed: string, lost: string, newest: string, stored: number, entries: RawEntry[]]>;
  chatMarkLost(lost: string, id: string, channel: string, publish: string): Promise<number>;
  chatHead(stream: string, lost: string): Promise<[newest: string, lost: string]>;
  chatArchiveClaim(
    lease: string, stream: string, trimmed: string, lost: string, archived: string, owner: string, leaseMs: number, after: string, count: number,
  ): Promise<[0] | [1, trimmed: string, lost: string, newest: string, stored: number, entries: RawEntry[]]>;
  chatArchiveDone(stream: string, archiveSet: string, lease: string, archived: string, through: string, room: string, owner: string): Promise<number>;
  chatPresenceSet(
    ...args: [...keys: PresenceKeys, conv: string, members: string, ...argv: PresenceArgv, user: string, connections: number, list: number, ...eventArgs: EventArgs]
  ): Promise<[fresh: number, epoch: string, count: number, first: string[], seq: number] | [count: number, epoch: string] | [-1]>;
  chatPresenceSync(...args: [...keys: PresenceKeys, ...argv: PresenceArgv, holds: string, ...eventArgs: EventArgs]): Promise<[count: number, epoch: string]>;
  chatPresenceWithdraw(
    ...args: [...keys: PresenceKeys, ...argv: PresenceArgv, batch: number, ...eventArgs: EventArgs]
  ): Promise<[held: number, count: number, epoch: string]>;
  chatPresencePage(
    present: string, conns: string, after: string, limit: number, withConnections: 0 | 1,
  ): Promise<[count: number, users: string[], connections: Array<string | null>]>;
  chatRoomOccupancy(present: string, state: string): Promise<[members: number, connections: number, epoch: string]>;
  chatRoomIndexAdd(index: string, epochs: string, room: string, epoch: string): Promise<number>;
  chatRoomIndexPrune(index: string, epochs: string, room: string, epoch: string): Promise<number>;
  chatUserSet(connections: string, rooms: string, events: string, node: string, count: number, user: string, ...eventArgs: EventArgs): Promise<number>;
  chatUserPresence(connections: string, roomsPrefix: string): Promise<[connections: number, rooms: string[]]>;
  chatNodesHeartbeat(nodes: string, reaping: string, node: string, ttlMs: number, reapMs: number): Promise<[added: number, dead: string[]]>;
  chatNodesForget(nodes: string, reaping: string, node: string): Promise<number>;
  chatEventsClaim(lease: string, stream: string, owner: string, leaseMs: number, count: number): Promise<[0, number] | [1, number, RawEntry[]]>;
  chatEventsAck(lease: string, stream: string, owner: string, entry: string): Promise<number>;
  chatEventsRelease(lease: string, owner: string): Promise<number>;
  chatEventsBacklog(stream: string): Promise<[0] | [number, string]>;
  chatRevoke(hash: string, user: string, before: number, until: number, now: number, channel: string): Promise<string>;
  chatDirect(
    sequence: string, once: string, channel: string, head: string, body: string, keyTtlMs: number, publish: string,
    ts: number, onceTtlMs: number | '',
  ): Promise<[id: string, ts: string, repeat: number, receivers: number]>;
}

/** Registers the scripts on a connection (EVALSHA, falling back to EVAL once per script). */
export function defineScripts<C extends Redis | Cluster>(redis: C): C & ChatScripts {
  redis.defineCommand('chatAfter', { numberOfKeys: 3, lua: AFTER });
  redis.defineCommand('chatMarkLost', { numberOfKeys: 1, lua: MARK_LOST });
  redis.defineCommand('chatHead', { numberOfKeys: 2, lua: HEAD });
  redis.defineCommand('chatArchiveClaim', { numberOfKeys: 5, lua: ARCHIVE_CLAIM });
  redis.defineCommand('chatArchiveDone', { numberOfKeys: 4, lua: ARCHIVE_DONE });
  const named: Record<string, LuaScript> = {
    chatAppend: APPEND,
    ...CONVERSATION_SCRIPTS,
    chatPresenceSet: PRESENCE_SET,
    chatPresenceSync: PRESENCE_SYNC,
    chatPresenceWithdraw: PRESENCE_WITHDRAW,
    chatPresencePage: PRESENCE_PAGE,
    chatRoomOccupancy: ROOM_OCCUPANCY,
    chatRoomIndexAdd: ROOM_INDEX_ADD,
    chatRoomIndexPrune: ROOM_INDEX_PRUNE,
    chatUserSet: USER_SET,
    chatUserPresence: USER_PRESENCE,
    chatNodesHeartbeat: NODES_HEARTBEAT,
    chatNodesForget: NODES_FORGET,
  };
  for (const [name, script] of Object.entries(named)) redis.defineCommand(name, script);
  redis.defineCommand('chatEventsClaim', { numberOfKeys: 2, lua: EVENTS_CLAIM });
  redis.defineCommand('chatEventsAck', { numberOfKeys: 2, lua: EVENTS_ACK });
  redis.defineCommand('chatEventsRelease', { numberOfKeys: 1, lua: EVENTS_RELEASE });
  redis.defineCommand('chatEventsBacklog', { numberOfKeys: 1, lua: EVENTS_BACKLOG });
  redis.defineCommand('chatRevoke', { numberOfKeys: 1, lua: REVOKE });
  redis.defineCommand('chatDirect', { numberOfKeys: 2, lua: DIRECT });
  return redis as C & ChatScripts;
}
