import { ArchiveStore } from '@chat/archive';
import {
  KeySpace, MemoryBroker, MemoryDirectory, MemoryEventFeed, MemoryHub, MemoryMembership, MemoryMessageChanges, MemoryModeration, MemoryOfflineNotices, MemoryReadPositions, MemoryRevocations,
  RedisBroker, RedisConversationRestore, RedisDirectory, RedisEventFeed, RedisMembership, RedisModeration, RedisOfflineNotices, RedisReadPositions, RedisRevocations,
  createRedisClients, duplicateForChannel, type Broker, type Directory, type EventFeed, type ConversationRestore, type Membership, type MessageChanges, type Moderation, type OfflineNotices, type ReadPositions, type RedisClients, type TokenRevocations,
} from '@chat/broker';
import uWS from 'uWebSockets.js';
import { loadConfigOrExit } from '@chat/env';
import { loadConfig, type Config } from './config.js';
import { createGateway } from './gateway.js';
import { createLogger, type Logger } from './logger.js';

/** The only place that reads the environment, handles signals and exits. */
async function main(): Promise<void> {
  const config = loadConfigOrExit(loadConfig);
  const log = createLogger(config.logLevel, config.nodeId);
  process.on('uncaughtException', (err) => {
    log.fatal({ err }, 'uncaught exception');
    process.exit(1);
  });
  if (!String(uWS.App).includes('[native code]')) {
    log.warn('uWebSockets.js native addon did not load; running on its slow JavaScript fallback');
  }

  if (config.devIdentity) {
    log.warn({ devIdentity: true }, 'DEVELOPMENT IDENTITIES ARE ON: anyone can connect as any user with ?user=<id>. '
      + 'Set JWT_SECRET or JWT_PUBLIC_KEY (and leave DEV_IDENTITY unset) in production.');
  }
  const { broker, directory, revocations, membership, reads, changes, moderation, restore, notices, events, redis, closeChannels } = await createBroker(config, log);
  const archive = config.databaseUrl === undefined ? undefined : openArchive(config.databaseUrl, log);
  // With the archive, membership and read positions are kept there too, and put back from there.
  const durable = archive === undefined || restore === undefined ? undefined : { store: archive.conversations, restore };
  const gateway = createGateway({ config, broker, directory, revocations, membership, reads, changes, moderation, notices, durable, events, archive, erasure: archive, log });
  const port = await gateway.listen();
  log.info({ host: config.host, port, metricsPort: gateway.metricsPort, broker: redis ? `redis ${redis.mode}` : 'memory' }, 'listening');

  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    setTimeout(() => {
      log.warn({ drainTimeoutMs: config.drainTimeoutMs }, 'drain timed out; exiting anyway');
      process.exit(0);
    }, config.drainTimeoutMs).unref();
    gateway.close()
      .then(() => Promise.all([redis?.close(), closeChannels?.(), archive?.close()]))
      .then(() => log.info('stopped'), (err: unknown) => log.error({ err }, 'error while shutting down'))
      .finally(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

/**
 * The archive this gateway reads history from. PostgreSQL may be down at
 * start: the schema is brought up to date in the background, retried until it
 * works; meanwhile history past the Redis window answers `unavailable`.
 */
function openArchive(url: string, log: Logger): ArchiveStore {
  const archiveLog = log.child({ component: 'archive' });
  const store = ArchiveStore.connect({ url, onPoolError: (err) => archiveLog.warn({ err }, 'archive connection lost') });
  void store.migrateWhenReachable((err, retryInMs) => archiveLog.warn({ err, retryInMs }, 'archive not reachable yet; retrying'), 30_000)
    .then((version) => archiveLog.info({ version }, 'archive schema up to date'));
  return store;
}

interface BrokerParts {
  broker: Broker;
  directory: Directory;
  revocations: TokenRevocations;
  membership: Membership;
  reads: ReadPositions;
  changes: MessageChanges;
  moderation: Moderation;
  /** Redis only: what puts conversations back after Redis lost them. */
  restore?: ConversationRestore;
  /** When webhooks deliver member.unread. */
  notices?: OfflineNotices;
  /** The recorded events, when webhooks are on. */
  events?: EventFeed;
  redis?: RedisClients;
  /** Closes the connections of plain channels (revocations, webhook wake-ups). */
  closeChannels?: () => Promise<unknown>;
}

async function createBroker(config: Config, log: Logger): Promise<BrokerParts> {
  const recording = config.webhooks === undefined ? undefined : { types: config.webhooks.events, backlogLimit: config.webhooks.backlogLimit };
  if (config.redis === undefined) {
    log.warn('REDIS_URL is not set: running as a single node on the in-process broker');
    const hub = new MemoryHub();
    const broker = new MemoryBroker({ hub, historySize: config.historySize, idempotencyTtlMs: config.idempotencyTtlMs, events: recording, unreadWindowMs: config.unreadWindowMs });
    return {
      broker, directory: new MemoryDirectory(hub), revocations: new MemoryRevocations(hub),
      membership: new MemoryMembership(hub), reads: new MemoryReadPositions(hub), events: recording && new MemoryEventFeed(hub.events),
      changes: new MemoryMessageChanges(hub, broker), moderation: new MemoryModeration(hub),
      notices: recording && config.unreadWindowMs !== undefined ? new MemoryOfflineNotices(hub, recording) : undefined,
    };
  }
  const brokerLog = log.child({ component: 'broker' });
  const redis = createRedisClients(config.redis, {
    commandTimeoutMs: config.brokerTimeoutMs,
    name: `chat-gw:${config.nodeId}`,
    tlsCa: config.redisTlsCa,
    prefix: config.redisPrefix,
    probeIntervalMs: config.redisProbeIntervalMs,
    probeTimeoutMs: config.redisProbeTimeoutMs,
    log: brokerLog,
  });
  const keys = new KeySpace(config.redisPrefix);
  const broker = new RedisBroker({
    command: redis.command,
    pubsub: redis.pubsub,
    keys,
    historySize: config.historySize,
    nodeId: config.nodeId,
    presenceTtlMs: config.presenceTtlMs,
    idempotencyTtlMs: config.idempotencyTtlMs,
    archive: config.databaseUrl === undefined ? undefined : { hold: config.archiveHold },
    connectWaitMs: config.brokerTimeoutMs,
    waitReplicas: config.redisWaitReplicas,
    waitTimeoutMs: config.redisWaitTimeoutMs,
    events: recording,
    unreadWindowMs: config.unreadWindowMs,
    log: brokerLog,
  });
  const directory = new RedisDirectory(redis.command, keys, config.brokerTimeoutMs);
  const channel = (what: string): ReturnType<typeof duplicateForChannel> => {
    const connection = duplicateForChannel(redis.command);
    connection.on('error', (err: Error) => brokerLog.debug({ err }, `${what} connection error`));
    return connection;
  };
  const revocationChannel = channel('token revocation');
  const revocations = new RedisRevocations({ command: redis.command, subscriber: revocationChannel, keys, waitMs: config.brokerTimeoutMs });
  await revocations.start();
  const wake = recording && channel('webhook wake-up');
  const events = wake && new RedisEventFeed({ command: redis.command, subscriber: wake, keys, sharded: redis.mode === 'cluster', waitMs: config.brokerTimeoutMs });
  const unreadWake = recording && config.unreadWindowMs !== undefined ? channel('unread wake-up') : undefined;
  const notices = unreadWake && new RedisOfflineNotices({
    command: redis.command, subscriber: unreadWake, keys, sharded: redis.mode === 'cluster', recording: recording!, waitMs: config.brokerTimeoutMs,
  });
  const closeChannels = (): Promise<unknown> => Promise.all([revocations.close(), ...[revocationChannel, wake, unreadWake].map((c) => c?.quit().catch(() => {}))]);
  const membership = new RedisMembership(redis.command, keys, config.brokerTimeoutMs);
  const reads = new RedisReadPositions(redis.command, keys, config.brokerTimeoutMs);
  const restore = new RedisConversationRestore(redis.command, keys, config.brokerTimeoutMs);
  const moderation = new RedisModeration(redis.command, keys, config.brokerTimeoutMs);
  return { broker, directory, revocations, membership, reads, changes: broker.changes, moderation, restore, notices, events, redis, closeChannels };
}

void main();
