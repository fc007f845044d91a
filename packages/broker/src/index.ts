export type {
  Broker, BrokerListener, BrokerStats, AppendRequest, AppendResult, DirectRequest, DirectResult, StoredMessage, RangeResult, RangeGap, StreamHead,
} from './broker.js';
export { BrokerUnavailableError, BrokerCommandError, BrokerNotReplicatedError } from './errors.js';
export { MemoryBroker, MemoryHub, type MemoryBrokerOptions } from './memory/memory-broker.js';
export { RedisBroker, type RedisBrokerOptions } from './redis/redis-broker.js';
export { createRedisClients, type HostPort, type RedisClients, type RedisClientOptions, type RedisTarget } from './redis/clients.js';
export type { PubSub } from './redis/pubsub.js';
export { keySlot } from './redis/slot.js';
export { KeySpace } from './redis/keys.js';
export { RedisArchiveFeed, type ArchiveFeedOptions, type ArchiveRead } from './redis/archive-feed.js';
