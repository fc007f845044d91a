import { CURRENT, MARKS } from './change-piece.js';
import { ID_ORDER, luaScript } from './lua.js';

/* Reading a room's stream as clients see it: messages in their current version (see change-scripts.ts). */

/*
 * A page of messages before `before` ('' for the newest), newest first, in
 * their current version (see change-piece.ts): change entries skipped, tombstones in
 * place. A room that never had a change is one XREVRANGE.
 */
const HISTORY = luaScript(['stream', 'trimmed', 'changes', 'marks'], ['before', 'limit', 'reader'], ID_ORDER, MARKS, CURRENT, `
local limit = tonumber(A.limit)
local cursor = A.before == '' and '+' or '(' .. A.before
if redis.call('EXISTS', K.changes) == 0 then return redis.call('XREVRANGE', K.stream, cursor, '-', 'COUNT', limit) end
local found, low = {}, nil
while not low do
  local count = limit - #found + 2
  local batch = redis.call('XREVRANGE', K.stream, cursor, '-', 'COUNT', count)
  for i = 1, #batch do
    if batch[i][2][1] == 'b' then
      found[#found + 1] = batch[i]
      if #found == limit then low = batch[i][1] break end
    end
  end
  if not low and #batch < count then low = redis.call('GET', K.trimmed) or '0-0' end
  if not low then cursor = '(' .. batch[#batch][1] end
end
return withChanges(found, low, A.before, limit, A.reader)
`);

/*
 * Reads the newest entries after an id atomically with what proves (or
 * disproves) continuity from it: the trimmed and lost markers, whether the id
 * itself is stored (an entry a delete removed counts: a reader was there), and the
 * newest id. Messages come in their current version with tombstones in place;
 * change entries come as they are. `start` is the exclusive start id (the id,
 * or one below the largest).
 */
const AFTER = luaScript(['stream', 'trimmed', 'lost', 'changes', 'marks'], ['after', 'start', 'count'], ID_ORDER, MARKS, CURRENT, `
local trimmed = redis.call('GET', K.trimmed) or '0-0'
local lost = redis.call('GET', K.lost) or '0-0'
local newest = redis.call('XREVRANGE', K.stream, '+', '-', 'COUNT', 1)[1]
local count = tonumber(A.count)
local entries = redis.call('XREVRANGE', K.stream, '+', '(' .. A.start, 'COUNT', count)
local stored = #redis.call('XRANGE', K.stream, A.after, A.after)
if redis.call('EXISTS', K.changes) == 1 then
  if stored == 0 and removed(A.after) then stored = 1 end
  local low = #entries == count and entries[#entries][1] or A.start
  entries = withChanges(entries, low, '', count, '')
end
return { trimmed, lost, newest and newest[1] or '0-0', stored, entries }
`);

/** The page scripts, the same for every broker. */
export const PAGE_SCRIPTS = { chatHistory: HISTORY, chatAfter: AFTER };
