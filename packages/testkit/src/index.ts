export { freePort, freeStablePort } from './ports.js';
export { sleep, waitFor, uniquePrefix } from './wait.js';
export { spawnService, type ServiceProcess, type SpawnOptions, type Exit } from './process.js';
export { redisForTests, startRedisServer, hasRedisBinary, waitForPing, type RedisServer, type RedisPersistence, type RedisServerOptions } from './redis.js';
export { TestClient, HttpRefusal, type CloseInfo, type WaitOptions } from './ws-client.js';
export { startRedisCluster, type RedisClusterHandle, type RedisClusterOptions } from './redis-cluster.js';
export { startRedisSentinel, type RedisSentinelHandle, type RedisSentinelOptions } from './redis-sentinel.js';
export { postgresForTests, startPostgres, createDatabase, type PostgresServer } from './postgres.js';
export { startWebhookReceiver, type ReceivedDelivery, type WebhookReceiver } from './webhook-receiver.js';
