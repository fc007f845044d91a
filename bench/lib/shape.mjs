// The load every configuration of bench/redis-cluster.mjs runs (bench/durability.mjs shares it).
// The load: 40 rooms of 25 (1,000 clients), one sender per room, 100-byte messages.
// Many small rooms, so that rooms spread over the shards and Redis work per delivery
// is high (each message is one script call and 3 shard-channel deliveries, then 25 WebSocket writes).
export const SHAPE = ['--rooms', '40', '--members', '25', '--senders', '40', '--size', '100'];
export const MEMBERS = 25;
export const FIXED_RATE = Number(process.env.FIXED_RATE ?? 400); // messages/s: 10,000 deliveries/s
export const FIND_MAX_START = Number(process.env.FIND_MAX_START ?? 1000); // messages/s: 25,000 deliveries/s
export const FIND_MAX_FACTOR = Number(process.env.FIND_MAX_FACTOR ?? 1.2);
export const KEEP_UP = 0.9; // a find-max step counts only if at least this share of the offered deliveries arrived
export const WATCHDOG_MINUTES = 12;
