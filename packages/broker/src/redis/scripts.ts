import type { Cluster, Redis } from 'ioredis';
import { REVOKE } from './revocation-scripts.js';
import { MARKS } from './change-piece.js';
import { PAGE_SCRIPTS } from './page-scripts.js';
import { ACTIVITY, CONVERSATION_SCRIPTS, type ConversationScripts } from './conversation-scripts.js';
import { EVENTS_ACK, EVENTS_BACKLOG, EVENTS_CLAIM, EVENTS_RELEASE } from './event-scripts.js';
import { ID_ORDER, luaScript, type LuaScript } from './lua.js';
import {
  NODES_FORGET, NODES_HEARTBEAT, PRESENCE_PAGE, PRESENCE_SET, PRESENCE_SYNC, PRESENCE_WITHDRAW,
  ROOM_INDEX_ADD, ROOM_INDEX_PRUNE, ROOM_OCCUPANCY, USER_PRESENCE, USER_SET,
} from './presence-scripts.js';

/*
 * raiseLost raises a room's lost-marker to an id (never lowers it) and, when it
 * rose, tells the room's subscribers, ahead of anything published after it.
 */
export const LOST = ID_ORDER + `
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
export const ONCE = `
local function seen(key, ttl)
  local first = redis.call('GET', key)
  if not first then return nil end
  redis.call('PEXPIRE', key, ttl)
  local bar = string.find(first, '|', 1, true)
  return { string.sub(first, 1, bar - 1), string.sub(first, bar + 1), 1 }
end
`;

/*
 * For the archiver, in one round trip: the room's lease for `owner` (taken when
 * free, renewed when held), and when held, the oldest `count` messages after an
 * id with what proves continuity from it (as AFTER) and the newest id.
 * Returns {0} when another owner holds the lease, else {1, trimmed, lost, newest, stored, entries}.
 * The id read after is the archive's watermark: the append script trims nothing newer.
 * A watermark whose message was deleted since counts as stored: its tombstone is.
 */
const ARCHIVE_CLAIM = luaScript(['lease', 'stream', 'trimmed', 'lost', 'archived', 'marks'], ['owner', 'leaseMs', 'after', 'count'], MARKS, `
local holder = redis.call('GET', K.lease)
if holder and holder ~= A.owner then return { 0 } end
redis.call('SET', K.lease, A.owner, 'PX', A.leaseMs)
redis.call('SET', K.archived, A.after)
local trimmed = redis.call('GET', K.trimmed) or '0-0'
local lost = redis.call('GET', K.lost) or '0-0'
local newest = redis.call('XREVRANGE', K.stream, '+', '-', 'COUNT', 1)[1]
local stored = #redis.call('XRANGE', K.stream, A.after, A.after)
if stored == 0 and A.after ~= '0-0' and removed(A.after) then stored = 1 end
return { 1, trimmed, lost, newest and newest[1] or '0-0', stored, redis.call('XRANGE', K.stream, '(' .. A.after, '+', 'COUNT', A.count) }
`);

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

/** Keys and arguments of the room presence scripts (see presence-scripts.ts). */
export type PresenceKeys = [present: string, conns: string, hold: string, state: string, events: string];
export type PresenceArgv = [channel: string, publish: string, room: string, stateTtlMs: number];

/** The four event arguments every recording script ends with (see EVENTS): types, wake channel, backlog limit, nonce. */
export type EventArgs = [types: string, wake: string, limit: number | '', nonce: string];

export interface ChatScripts extends ConversationScripts {
  chatAfter(
    stream: string, trimmed: string, lost: string, changes: string, marks: string, after: string, start: string, count: number,
  ): Promise<[trimmed: string, lost: string, newest: string, stored: number, entries: RawEntry[]]>;
  chatHistory(stream: string, trimmed: string, changes: string, marks: string, before: string, limit: number, reader: string): Promise<RawEntry[]>;
  chatMarkLost(lost: string, id: string, channel: string, publish: string): Promise<number>;
  chatHead(stream: string, lost: string): Promise<[newest: string, lost: string]>;
  chatArchiveClaim(
    lease: string, stream: string, trimmed: string, lost: string, archived: string, marks: string,
    owner: string, leaseMs: number, after: string, count: number,
  ): Promise<[0] | [1, trimmed: string, lost: string, newest: string, stored: number, entries: RawEntry[]]>;
  chatArchiveDone(stream: string, archiveSet: string, lease: string, archived: string, through: string, room: string, owner: string): Promise<number>;
  chatPresenceSet(
    ...args: [...keys: PresenceKeys, conv: string, members: string, moderation: string, ...argv: PresenceArgv, user: string, connections: number, list: number, ...eventArgs: EventArgs]
  ): Promise<[fresh: number, epoch: string, count: number, first: string[], seq: number] | [count: number, epoch: string] | [-1] | [-2, reason: string]>;
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
  redis.defineCommand('chatMarkLost', { numberOfKeys: 1, lua: MARK_LOST });
  redis.defineCommand('chatHead', { numberOfKeys: 2, lua: HEAD });
  redis.defineCommand('chatArchiveDone', { numberOfKeys: 4, lua: ARCHIVE_DONE });
  const named: Record<string, LuaScript> = {
    ...CONVERSATION_SCRIPTS,
    ...PAGE_SCRIPTS,
    chatArchiveClaim: ARCHIVE_CLAIM,
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
  redis.defineCommand('chatActivity', { lua: ACTIVITY }); // any number of keys: the caller says how many
  redis.defineCommand('chatEventsClaim', { numberOfKeys: 2, lua: EVENTS_CLAIM });
  redis.defineCommand('chatEventsAck', { numberOfKeys: 2, lua: EVENTS_ACK });
  redis.defineCommand('chatEventsRelease', { numberOfKeys: 1, lua: EVENTS_RELEASE });
  redis.defineCommand('chatEventsBacklog', { numberOfKeys: 1, lua: EVENTS_BACKLOG });
  redis.defineCommand('chatRevoke', { numberOfKeys: 1, lua: REVOKE });
  redis.defineCommand('chatDirect', { numberOfKeys: 2, lua: DIRECT });
  return redis as C & ChatScripts;
}
