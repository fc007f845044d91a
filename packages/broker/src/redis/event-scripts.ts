/*
 * Cluster events (see cluster-events.ts). A script that decides a transition
 * records its event in the same step: `events(stream, ARGV, i)` reads the four
 * event arguments from ARGV[i] on (types as ',a,b,' or '' for none, wake channel,
 * backlog limit, nonce), `wants` says whether a type is recorded (check it before
 * building costly data), and `emit` appends `{"id","type","ts","data"}` to the
 * stream of the script's own slot, announcing a stream that was empty. Ids are
 * the nonce (unique per call) and a counter, so a retried delivery keeps its id.
 */
export const EVENTS = `
local function events(stream, argv, i)
  return { stream = stream, types = argv[i], wake = argv[i + 1], limit = argv[i + 2], nonce = argv[i + 3], n = 0 }
end
local function wants(ev, kind)
  return ev.types ~= '' and string.find(ev.types, ',' .. kind .. ',', 1, true) ~= nil
end
local function emit(ev, now, kind, data)
  if not wants(ev, kind) then return end
  ev.n = ev.n + 1
  redis.call('XADD', ev.stream, 'MAXLEN', '~', ev.limit, '*', 'e',
    '{"id":"' .. ev.nonce .. '.' .. ev.n .. '","type":"' .. kind .. '","ts":' .. string.format('%d', now) .. ',"data":' .. data .. '}')
  if redis.call('XLEN', ev.stream) == 1 then redis.call('PUBLISH', ev.wake, ev.stream) end
end
local function roomData(room) return '{"room":' .. cjson.encode(room) .. '}' end
local function userData(user) return '{"user":' .. cjson.encode(user) .. '}' end
local function memberData(room, user) return '{"room":' .. cjson.encode(room) .. ',"user":' .. cjson.encode(user) .. '}' end
`;

/*
 * Takes (or renews) a stream's lease for the owner and reads its oldest events.
 * Returns {0, lease ms left} when another owner holds it, else {1, pending, entries}.
 * KEYS: lease, stream. ARGV: owner, lease ms, count
 */
export const EVENTS_CLAIM = `
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return { 0, redis.call('PTTL', KEYS[1]) } end
local pending = redis.call('XLEN', KEYS[2])
if pending == 0 then
  redis.call('DEL', KEYS[1], KEYS[2])
  return { 1, 0, {} }
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return { 1, pending, redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', ARGV[3]) }
`;

/*
 * Deletes a delivered event while the owner holds the lease; the last one takes
 * the stream and the lease with it. Returns the events left, or -1 without the lease.
 * KEYS: lease, stream. ARGV: owner, entry id
 */
export const EVENTS_ACK = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
redis.call('XDEL', KEYS[2], ARGV[2])
local left = redis.call('XLEN', KEYS[2])
if left == 0 then redis.call('DEL', KEYS[2], KEYS[1]) end
return left
`;

// KEYS: lease. ARGV: owner
export const EVENTS_RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
`;

// Length and oldest entry id of a stream ({0} when empty). KEYS: stream
export const EVENTS_BACKLOG = `
local n = redis.call('XLEN', KEYS[1])
if n == 0 then return { 0 } end
return { n, redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1][1] }
`;
