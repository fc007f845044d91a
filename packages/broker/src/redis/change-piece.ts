/*
 * The Lua every script that reads or writes a room's changes shares (see
 * change-scripts.ts for the keys): ids padded for the marks index, whether a
 * message was deleted, and a message's body as it is now.
 */

/** Needs K.changes and K.marks, and ID_ORDER for withChanges. */
export const CHANGES = `
-- Ids padded to a fixed width, so the marks sort by id.
local function padded(id)
  local dash = string.find(id, '-', 1, true)
  local ms, seq = string.sub(id, 1, dash - 1), string.sub(id, dash + 1)
  return string.rep('0', 16 - #ms) .. ms .. '-' .. string.rep('0', 20 - #seq) .. seq
end
local function idOfMark(mark) return string.match(mark, '([^|]+)$') end
local function tombstoned(id) return redis.call('ZSCORE', K.marks, 'g|' .. padded(id) .. '|' .. id) ~= false end
-- Whether id was stored and a delete removed it (a message, or one of its edits): a point the stream continues from.
local function removed(id)
  local p = padded(id)
  return redis.call('ZSCORE', K.marks, 'g|' .. p .. '|' .. id) ~= false or redis.call('ZSCORE', K.marks, 'x|' .. p .. '|' .. id) ~= false
end
-- A message's body as it is now (READER '' for no one): edited or deleted, with its reactions and the reader's own.
local function current(id, body, reader)
  local over = redis.call('HMGET', K.changes, id, id .. '|r')
  if over[1] then body = over[1] end
  if not over[2] then return body end
  local mine = {}
  if reader ~= '' then
    for reaction in pairs(cjson.decode(over[2])) do
      if redis.call('ZSCORE', K.marks, 'r|' .. id .. '|' .. reaction .. '|' .. reader) then mine[#mine + 1] = '"' .. reaction .. '"' end
    end
  end
  local own = #mine > 0 and (',"mine":[' .. table.concat(mine, ',') .. ']') or ''
  return string.sub(body, 1, -2) .. ',"reactions":' .. over[2] .. own .. '}'
end
-- Merges the tombstones with ids strictly between low and high (high '' for none), newest first,
-- into entries (newest first), applies every change, and keeps the newest limit.
local function withChanges(entries, low, high, limit, reader)
  local top = high == '' and '(g|~' or '(g|' .. padded(high) .. '|'
  local dead = redis.call('ZRANGE', K.marks, top, '(g|' .. padded(low) .. '|~', 'BYLEX', 'REV', 'LIMIT', 0, limit)
  local out, i, j = {}, 1, 1
  while #out < limit and (i <= #entries or j <= #dead) do
    local e = entries[i]
    local g = dead[j] and idOfMark(dead[j])
    if e and (not g or newer(e[1], g)) then
      if e[2][1] == 'b' then e[2][2] = current(e[1], e[2][2], reader) end
      out[#out + 1] = e
      i = i + 1
    else
      out[#out + 1] = { g, { 'b', redis.call('HGET', K.changes, g) or '' } }
      j = j + 1
    end
  end
  return out
end
`;

