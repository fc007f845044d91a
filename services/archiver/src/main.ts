import { ArchiveStore } from '@chat/archive';
import { KeySpace, RedisArchiveFeed, createRedisClients, duplicateForChannel } from '@chat/broker';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { Archiver } from './archiver.js';
import { loadConfigOrExit } from '@chat/env';
import { loadConfig } from './config.js';
import { createHttpServer } from './http.js';
import { createMetrics } from './metrics.js';

/** The only place that reads the environment, handles signals and exits. */
async function main(): Promise<void> {
  const config = loadConfigOrExit(loadConfig);
  const log = pino({ level: config.logLevel, base: { node: config.nodeId, service: 'archiver' } });
  const redis = createRedisClients(config.redis, {
    commandTimeoutMs: config.brokerTimeoutMs, name: `chat-archiver:${config.nodeId}`, prefix: config.redisPrefix, log: log.child({ component: 'redis' }),
  });
  const wake = duplicateForChannel(redis.command);
  wake.on('error', (err: Error) => log.debug({ err }, 'wake-up connection error'));
  const feed = new RedisArchiveFeed({ command: redis.command, subscriber: wake, keys: new KeySpace(config.redisPrefix), sharded: redis.mode === 'cluster' });
  const store = ArchiveStore.connect({ url: config.databaseUrl, onPoolError: (err) => log.warn({ err }, 'archive connection lost') });
  const version = await store.migrateWhenReachable((err, retryInMs) => log.warn({ err, retryInMs }, 'PostgreSQL not reachable yet; retrying'));
  log.info({ version }, 'archive schema up to date');

  const registry = new Registry();
  let archiver: Archiver | undefined;
  const metrics = createMetrics(registry, {
    lagSeconds: () => archiver?.lagSeconds ?? 0,
    pendingRooms: () => archiver?.pendingRooms ?? 0,
    redisUp: () => feed.up,
    databaseUp: () => archiver?.databaseUp ?? false,
  });
  archiver = new Archiver({ config, feed, store, metrics, log });
  const server = createHttpServer(registry, () => {
    const redisUp = feed.up;
    const { databaseUp, listening, lagSeconds } = archiver!;
    return { ready: redisUp && databaseUp && listening, redis: redisUp ? 'up' : 'down', database: databaseUp ? 'up' : 'down', listening, lagSeconds };
  });
  await new Promise<void>((resolve) => server.listen(config.port, config.host, resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : config.port;
  await archiver.start();
  log.info({ host: config.host, port, redis: redis.mode }, 'listening');

  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    setTimeout(() => process.exit(0), 10_000).unref();
    archiver!.stop()
      .then(() => Promise.all([redis.close(), wake.quit().catch(() => {}), store.close(), new Promise((r) => server.close(r))]))
      .then(() => log.info('stopped'), (err: unknown) => log.error({ err }, 'error while shutting down'))
      .finally(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

void main();
