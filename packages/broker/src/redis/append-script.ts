import { MEMBERS_ONLY } from './conversation-scripts.js';
import { EVENTS } from './event-scripts.js';
import { luaConstants, luaScript, type LuaScript } from './lua.js';
import { LOST, ONCE } from './scripts.js';

/** What a broker appends with, the same for every append: baked into its script as constants, so no append carries them. */
export interface AppendSettings {
  historySize: number;
  trimBatch: number;
  /** PUBLISH, or SPUBLISH on Redis Cluster. */
  publish: 'PUBLISH' | 'SPUBLISH';
  /** How long an idempotency key is remembered (ms). */
  onceTtlMs: number;
  /** With the archive on: its wake channel, and how far beyond the history size trimming waits for it. */
  archive?: { wake: string; hold: number };
  /** With offline members told of unread messages: the window (ms), and the due sets' wake channel. */
  unread?: { windowMs: number; wake: string };
}

export type AppendKeys = [
  stream: string, trimmed: string, lost: string, once: string, archiveSet: string, archived: string, events: string,
  conv: string, members: string, reads: string, unreadDue: string, moderation: string, changes: string,
];
/** `flags`: `k` when the append has an idempotency key. */
export type AppendArgv = [channel: string, ts: number, head: string, body: string, lastDelivered: string, room: string, user: string, flags: string];
export type AppendArgs = [...keys: AppendKeys, ...argv: AppendArgv];

/*
 * Trims the stream to its newest HISTORY_SIZE messages, in batches of
 * TRIM_BATCH, with every change stored since the oldest message it keeps:
 * changes do not count (K.changes `c` says how many the stream holds), so
 * reactions to a popular message never push messages out. Records the newest
 * trimmed id: MAXLEN trimming does not update the stream's own
 * max-deleted-entry-id, and `after()` needs it to say whether a gap is complete.
 * With ARCHIVE_WAKE set, trimming keeps what the archive has not taken yet (up
 * to its watermark), up to ARCHIVE_HOLD messages beyond the history size: an
 * archiver that is behind or down loses nothing until then, and what it finds
 * trimmed it records as lost. (K.stream, K.trimmed, K.archived, K.changes; needs ID_ORDER)
 */
export const TRIM = `
local function trimStream()
  local over = redis.call('XLEN', K.stream) - HISTORY_SIZE
  if over < TRIM_BATCH then return end
  local changes = tonumber(redis.call('HGET', K.changes, 'c') or '0')
  local excess = over - changes
  if excess < TRIM_BATCH then return end
  local watermark = ARCHIVE_WAKE and (redis.call('GET', K.archived) or '0-0')
  local hold = excess - (ARCHIVE_HOLD or 0)
  local cursor, messages, changesCut, last, keep = '-', 0, 0, nil, nil
  repeat
    local batch = redis.call('XRANGE', K.stream, cursor, '+', 'COUNT', TRIM_BATCH * 2)
    for i = 1, #batch do
      local e = batch[i]
      local message = e[2][1] == 'b'
      if (message and messages == excess) or (watermark and messages >= hold and newer(e[1], watermark)) then keep = e[1] break end
      if message then messages = messages + 1 else changesCut = changesCut + 1 end
      last = e[1]
    end
    if #batch < TRIM_BATCH * 2 then break end
    cursor = '(' .. batch[#batch][1]
  until keep
  if not keep or messages < TRIM_BATCH then return end
  redis.call('XTRIM', K.stream, 'MINID', keep)
  redis.call('SET', K.trimmed, last)
  if changesCut > 0 then redis.call('HINCRBY', K.changes, 'c', -changesCut) end
end
`;

/** The broker's settings as the constants of a script's text (see luaConstants). */
export function settingsConstants(settings: AppendSettings): string {
  return luaConstants({
    HISTORY_SIZE: settings.historySize,
    TRIM_BATCH: settings.trimBatch,
    PUBLISH: settings.publish,
    ONCE_TTL: settings.onceTtlMs,
    ARCHIVE_WAKE: settings.archive?.wake,
    ARCHIVE_HOLD: settings.archive?.hold,
    UNREAD_WINDOW: settings.unread?.windowMs,
    UNREAD_WAKE: settings.unread?.wake,
  });
}

/*
 * Appends a message and publishes it in one atomic step, with the id of the
 * message before it, so a subscriber can tell it missed one. The publish order
 * of a room is its stream order. Trims (see TRIM).
 * A user a moderator banned or muted in the room posts nothing ({'', reason, 3 or 4}).
 * When the sender's node delivered an id newer than anything stored, the stream
 * lost it (a restart, a failover): that is marked, and announced, first.
 *
 * With an idempotency key already recorded (flag `k`), nothing is appended: the
 * first message's id and ts come back, and the record's expiry is renewed (a
 * write, so a WAIT after the script also covers the first append).
 * Returns {id, ts, 0}, {id, ts, 1} for a repeat, {'', '', 2} when the sender
 * is not a member of a members-only room (nothing written).
 *
 * In a members-only room the message is numbered (see conversation-scripts.ts),
 * the sender's read position moves to it, it is published as
 * `n|<number>|<user>|...` so nodes can tell members their unread counts, and
 * with UNREAD_WINDOW set the room becomes due for telling offline members that
 * long after its first message since they were last told (see offline-notices.ts).
 *
 * With ARCHIVE_WAKE set, the room joins its slot's set of rooms to archive, and a
 * room that was not in it is announced on the archive's wake channel.
 * message.created is recorded when the event arguments are given and ask for it.
 */
const APPEND_STEPS = `
local restricted = redis.call('HGET', K.moderation, 'r:' .. A.user)
if restricted then return { '', string.sub(restricted, 3), string.sub(restricted, 1, 1) == 'b' and 3 or 4 } end
local keyed = string.find(A.flags, 'k', 1, true) ~= nil
local counted = membersOnly()
if counted and not isMember(A.user) then return { '', '', 2 } end
local first = keyed and seen(K.once, ONCE_TTL)
if first then return first end
local last = redis.call('XREVRANGE', K.stream, '+', '-', 'COUNT', 1)[1]
local prev = last and last[1] or '0-0'
if A.lastDelivered ~= '' and A.lastDelivered ~= prev and newer(A.lastDelivered, prev) then raiseLost(K.lost, A.lastDelivered, PUBLISH, A.channel) end
local number = counted and redis.call('HINCRBY', K.conv, 'n', 1)
local id = number and redis.call('XADD', K.stream, '*', 'b', A.body, 'n', number) or redis.call('XADD', K.stream, '*', 'b', A.body)
trimStream()
if number then
  redis.call('HSET', K.reads, A.user, id .. '|' .. number)
  local t = redis.call('TIME')
  redis.call('HSET', K.conv, 'last', id, 'at', t[1] .. string.format('%06d', tonumber(t[2])))
  redis.call(PUBLISH, A.channel, 'n|' .. number .. '|' .. A.user .. '|' .. id .. '|' .. prev .. '|' .. A.ts .. '|' .. A.head .. id .. A.body)
  if UNREAD_WINDOW then
    local due = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + UNREAD_WINDOW
    if redis.call('ZADD', K.unreadDue, 'NX', due, A.room) == 1 and redis.call('ZCARD', K.unreadDue) == 1 then
      redis.call('PUBLISH', UNREAD_WAKE, K.unreadDue)
    end
  end
else
  redis.call(PUBLISH, A.channel, 'm|' .. id .. '|' .. prev .. '|' .. A.ts .. '|' .. A.head .. id .. A.body)
end
if keyed then redis.call('SET', K.once, id .. '|' .. A.ts, 'PX', ONCE_TTL) end
if ARCHIVE_WAKE and redis.call('SADD', K.archiveSet, A.room) == 1 then redis.call('PUBLISH', ARCHIVE_WAKE, A.room) end
if ARGV[EVENT_ARGS] then -- left out when nothing is recorded
  local ev = events(K.events, ARGV, EVENT_ARGS)
  if wants(ev, 'message.created') then
    emit(ev, tonumber(A.ts), 'message.created', '{"room":' .. cjson.encode(A.room) .. ',"message":' .. A.head .. id .. A.body .. '}')
  end
end
return { id, A.ts, 0 }
`;

/** The append script of a broker with these settings (see APPEND_STEPS). */
export function appendScript(settings: AppendSettings): LuaScript {
  return luaScript(
    ['stream', 'trimmed', 'lost', 'once', 'archiveSet', 'archived', 'events', 'conv', 'members', 'reads', 'unreadDue', 'moderation', 'changes'],
    ['channel', 'ts', 'head', 'body', 'lastDelivered', 'room', 'user', 'flags'],
    settingsConstants(settings), LOST, ONCE, EVENTS, MEMBERS_ONLY, TRIM, APPEND_STEPS,
  );
}
