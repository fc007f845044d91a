import { Redis, type RedisOptions } from 'ioredis';

export interface RedisClientOptions {
  /** A command that gets no answer within this time fails, so callers can report `unavailable`. */
  commandTimeoutMs: number;
  /** Shown in CLIENT LIST, e.g. the node id. */
  name?: string;
  /** CA certificate(s), PEM, for `rediss://` servers with a private CA. Passwords and ACL users go in the URL. */
  tlsCa?: string;
}

/** A command connection and a subscriber connection: a subscribed connection can run nothing else. */
export interface RedisClients {
  command: Redis;
  subscriber: Redis;
  close(): Promise<void>;
}

/**
 * Creates the two connections a RedisBroker needs, with the options it relies on:
 * fail fast instead of queueing while disconnected (callers answer `unavailable`),
 * never resend a command after a reconnect (an append must not run twice), and
 * reconnect forever with capped backoff. Subscriptions are restored by the broker.
 */
export function createRedisClients(url: string, options: RedisClientOptions): RedisClients {
  const base: RedisOptions = {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    autoResubscribe: false,
    commandTimeout: options.commandTimeoutMs,
    connectTimeout: Math.max(options.commandTimeoutMs, 1000),
    retryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 2000),
    ...(options.tlsCa !== undefined && { tls: { ca: options.tlsCa } }),
  };
  const name = options.name === undefined ? undefined : options.name.replace(/[^A-Za-z0-9_.:-]/g, '_');
  const command = new Redis(url, { ...base, ...(name && { connectionName: `${name}:cmd` }) });
  const subscriber = new Redis(url, { ...base, ...(name && { connectionName: `${name}:sub` }) });
  // Calls made while a connection is down each wait for its 'ready' (see RedisBroker).
  command.setMaxListeners(0);
  subscriber.setMaxListeners(0);
  return {
    command,
    subscriber,
    async close() {
      await Promise.all([quit(command), quit(subscriber)]);
    },
  };
}

async function quit(redis: Redis): Promise<void> {
  if (redis.status === 'end') return;
  if (redis.status !== 'ready') {
    redis.disconnect();
    return;
  }
  await redis.quit().catch(() => redis.disconnect());
}
