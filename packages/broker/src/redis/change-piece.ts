/*
 * The Lua every script that reads or writes a room's changes shares (see
 * change-scripts.ts for the keys): ids padded for the marks index, whether a
 * message was deleted, and a message's body as it is now.
 */

/** Ids in the marks index, and whether one was deleted (K.marks). */
export const MARKS = `
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
`;

/**
 * Messages as they are now, for pages (K.changes, K.marks; needs MARKS, and
 * ID_ORDER for withChanges). Reaction keys are from [a-z0-9_+-], so the counts'
 * JSON keys are read with a pattern rather than decoded.
 */
export const CURRENT = `
-- The bodies of messages as they are now (READER '' for no one): edited or deleted, with their reactions
-- and the reader's own. entries are {id, body} pairs; two calls whatever their number.
local function currentAll(entries, reader)
  if #entries == 0 then return end
  local fields = {}
  for i, e in ipairs(entries) do fields[2 * i - 1] = e[1]; fields[2 * i] = e[1] .. '|r' end
  local over = redis.call('HMGET', K.changes, unpack(fields))
  local asked, owners = {}, {}
  for i, e in ipairs(entries) do
    if over[2 * i - 1] then e[2] = over[2 * i - 1] end
    local counts = over[2 * i]
    if counts and reader ~= '' then
      for reaction in string.gmatch(counts, '"([^"]+)":') do
        asked[#asked + 1] = 'r|' .. e[1] .. '|' .. reaction .. '|' .. reader
        owners[#owners + 1] = { i, reaction }
      end
    end
  end
  local mine = {}
  if #asked > 0 then
    for k, score in ipairs(redis.call('ZMSCORE', K.marks, unpack(asked))) do
      if score then
        local i = owners[k][1]
        mine[i] = (mine[i] and (mine[i] .. ',') or '') .. '"' .. owners[k][2] .. '"'
      end
    end
  end
  for i, e in ipairs(entries) do
    local counts = over[2 * i]
    if counts then
      e[2] = string.sub(e[2], 1, -2) .. ',"reactions":' .. counts .. (mine[i] and (',"mine":[' .. mine[i] .. ']') or '') .. '}'
    end
  end
end
local function current(id, body, reader)
  local one = { { id, body } }
  currentAll(one, reader)
  return one[1][2]
end
-- Merges the tombstones with ids strictly between low and high (high '' for none), newest first,
-- into entries (newest first), applies every change, and keeps the newest limit.
local function withChanges(entries, low, high, limit, reader)
  local top = high == '' and '(g|~' or '(g|' .. padded(high) .. '|'
  local dead = redis.call('ZRANGE', K.marks, top, '(g|' .. padded(low) .. '|~', 'BYLEX', 'REV', 'LIMIT', 0, limit)
  local out, messages, i, j = {}, {}, 1, 1
  while #out < limit and (i <= #entries or j <= #dead) do
    local e = entries[i]
    local g = dead[j] and idOfMark(dead[j])
    if e and (not g or newer(e[1], g)) then
      out[#out + 1] = e
      i = i + 1
    else
      out[#out + 1] = { g, { 'b', '' } }
      j = j + 1
    end
    local last = out[#out]
    if last[2][1] == 'b' then messages[#messages + 1] = { last[1], last[2][2], last[2] } end
  end
  currentAll(messages, reader)
  for _, m in ipairs(messages) do m[3][2] = m[2] end
  return out
end
`;

