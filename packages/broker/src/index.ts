export type { Broker, BrokerListener, AppendRequest, StoredMessage, RangeResult } from './broker.js';
export { BrokerUnavailableError, BrokerCommandError } from './errors.js';
export { MemoryBroker, MemoryHub, type MemoryBrokerOptions } from './memory/memory-broker.js';
export { RedisBroker, type RedisBrokerOptions } from './redis/redis-broker.js';
export { createRedisClients, type RedisClients, type RedisClientOptions } from './redis/clients.js';
export { KeySpace } from './redis/keys.js';
