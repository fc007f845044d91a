/*
 * Token revocations: one hash, user -> "before|until" (ms), small because
 * revocations are rare and lapse. A revocation only moves forward, lapsed
 * entries are dropped as new ones come, and every node hears it on one channel
 * as "before|until|user".
 * KEYS: hash. ARGV: user, before, until, now, channel
 */
export const REVOKE = `
local all = redis.call('HGETALL', KEYS[1])
local now = tonumber(ARGV[4])
local before, till = tonumber(ARGV[2]), tonumber(ARGV[3])
for i = 1, #all, 2 do
  local bar = string.find(all[i + 1], '|', 1, true)
  local heldBefore, heldUntil = tonumber(string.sub(all[i + 1], 1, bar - 1)), tonumber(string.sub(all[i + 1], bar + 1))
  if heldUntil <= now then redis.call('HDEL', KEYS[1], all[i])
  elseif all[i] == ARGV[1] then
    before, till = math.max(before, heldBefore), math.max(till, heldUntil)
  end
end
local value = string.format('%.0f|%.0f', before, till)
redis.call('HSET', KEYS[1], ARGV[1], value)
redis.call('PUBLISH', ARGV[5], value .. '|' .. ARGV[1])
return value
`;
