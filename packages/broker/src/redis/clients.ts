import { randomBytes } from 'node:crypto';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { silentLog, type BrokerLog } from '../log.js';
import type { PubSub } from './pubsub.js';
import { ShardedPubSub } from './sharded-pubsub.js';
import { SinglePubSub } from './single-pubsub.js';

export interface HostPort {
  host: string;
  port: number;
}

/** Where Redis is: one server, a Sentinel-managed primary, or a Redis Cluster. */
export type RedisTarget =
  | { mode: 'standalone'; url: string }
  | { mode: 'sentinel'; sentinels: HostPort[]; masterName: string; username?: string; password?: string }
  | { mode: 'cluster'; nodes: HostPort[]; username?: string; password?: string };

export interface RedisClientOptions {
  /** A command that gets no answer within this time fails, so callers can report `unavailable`. */
  commandTimeoutMs: number;
  /** Shown in CLIENT LIST, e.g. the node id. */
  name?: string;
  /** CA certificate(s), PEM, for TLS servers with a private CA. */
  tlsCa?: string;
  /** Namespace of the probe channels (the broker's key prefix). */
  prefix?: string;
  /** How often each subscriber connection publishes a probe to itself. */
  probeIntervalMs?: number;
  /** A probe not back within this long marks its connection deaf. */
  probeTimeoutMs?: number;
  log?: BrokerLog;
}

/** A command connection (or cluster client) and the subscriber side. */
export interface RedisClients {
  readonly mode: RedisTarget['mode'];
  command: Redis | Cluster;
  pubsub: PubSub;
  close(): Promise<void>;
}

/**
 * Creates what a RedisBroker needs, with the options it relies on: fail fast
 * instead of queueing while disconnected (callers answer `unavailable`), never
 * resend a command after a reconnect (an append must not run twice), reconnect
 * forever with capped backoff. Subscriptions are restored by the PubSub.
 */
export function createRedisClients(target: RedisTarget | string, options: RedisClientOptions): RedisClients {
  const resolved: RedisTarget = typeof target === 'string' ? { mode: 'standalone', url: target } : target;
  const name = options.name === undefined ? undefined : options.name.replace(/[^A-Za-z0-9_.:-]/g, '_');
  const base: RedisOptions = {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    autoResubscribe: false,
    commandTimeout: options.commandTimeoutMs,
    connectTimeout: Math.max(options.commandTimeoutMs, 1000),
    retryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 2000),
    ...(options.tlsCa !== undefined && { tls: { ca: options.tlsCa } }),
    ...(resolved.mode !== 'standalone' && { username: resolved.username, password: resolved.password }),
  };
  const named = (suffix: string): RedisOptions => (name ? { connectionName: `${name}:${suffix}` } : {});
  const probeId = randomBytes(6).toString('hex');
  const prefix = options.prefix ?? 'chat:';
  const probeChannel = (tag: string): string => `${prefix}probe:{${tag}}:${probeId}`;
  const probe = { intervalMs: options.probeIntervalMs ?? 1000, timeoutMs: options.probeTimeoutMs ?? 3000 };
  const log = options.log ?? silentLog;

  if (resolved.mode === 'cluster') {
    const command = new Cluster(resolved.nodes, {
      redisOptions: { ...base, ...named('cmd') },
      enableOfflineQueue: false,
      enableReadyCheck: true,
      slotsRefreshInterval: 2000,
      clusterRetryStrategy: (attempt) => Math.min(100 * 2 ** attempt, 2000),
    });
    command.setMaxListeners(0);
    const pubsub = new ShardedPubSub({ cluster: command, nodeOptions: { ...base, ...named('sub') }, probeChannel, probe, log });
    return {
      mode: 'cluster',
      command,
      pubsub,
      async close() {
        await pubsub.close();
        await quit(command);
      },
    };
  }

  const connect = (suffix: string): Redis => {
    const redis = resolved.mode === 'standalone'
      ? new Redis(resolved.url, { ...base, ...named(suffix) })
      // failoverDetector: drop the connection when Sentinel announces a new primary,
      // even if the old one is still reachable (it may keep answering as a replica).
      : new Redis({ ...base, ...named(suffix), sentinels: resolved.sentinels, name: resolved.masterName, role: 'master', failoverDetector: true });
    // Calls made while a connection is down each wait for its 'ready' (see whenReady).
    redis.setMaxListeners(0);
    return redis;
  };
  const command = connect('cmd');
  const subscriber = connect('sub');
  const pubsub = new SinglePubSub(subscriber, probeChannel('p'), { ...probe, publish: (channel, payload) => command.publish(channel, payload) }, log);
  return {
    mode: resolved.mode,
    command,
    pubsub,
    async close() {
      await pubsub.close();
      await Promise.all([quit(command), quit(subscriber)]);
    },
  };
}

async function quit(redis: Redis | Cluster): Promise<void> {
  if (redis.status === 'end') return;
  if (redis.status !== 'ready') {
    redis.disconnect();
    return;
  }
  await redis.quit().catch(() => redis.disconnect());
}

/**
 * A connection of its own for a plain (cluster-wide) channel, such as a wake-up
 * channel, that resubscribes by itself after a reconnect.
 */
export function duplicateForChannel(command: Redis | Cluster): Redis | Cluster {
  return command instanceof Cluster
    ? command.duplicate(undefined, { redisOptions: { ...command.options.redisOptions, autoResubscribe: true } })
    : command.duplicate({ autoResubscribe: true });
}
