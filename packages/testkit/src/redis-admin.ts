import { Redis } from 'ioredis';

/** What a command answers, as ioredis gives it. */
export type RedisReply = string | number | null | RedisReply[];

/**
 * Runs one command on 127.0.0.1:port over a connection of its own (a node may
 * be a Sentinel, a replica or a cluster node, so no client-side routing); an
 * error reply rejects.
 */
export async function call(port: number, args: ReadonlyArray<string | number>, timeoutMs = 3000): Promise<RedisReply> {
  const redis = new Redis({
    host: '127.0.0.1', port, lazyConnect: true, enableReadyCheck: false, enableOfflineQueue: false,
    maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: timeoutMs, commandTimeout: timeoutMs,
  });
  redis.on('error', () => {}); // the command's own rejection reports it
  try {
    await redis.connect();
    return (await redis.call(String(args[0]), ...args.slice(1).map(String))) as RedisReply;
  } finally {
    redis.disconnect();
  }
}

/** Runs one command; replies read like `redis-cli --raw`. */
export async function command(port: number, ...args: Array<string | number>): Promise<string> {
  return formatReply(await call(port, args));
}

function formatReply(reply: RedisReply): string {
  if (reply === null) return '';
  if (Array.isArray(reply)) return reply.map(formatReply).join('\n');
  return String(reply);
}

export function infoField(info: string, key: string): string | undefined {
  const line = info.split(/\r?\n/).find((l) => l.startsWith(`${key}:`));
  return line?.slice(key.length + 1);
}

export async function replicaLinkUp(port: number): Promise<true> {
  const info = await command(port, 'INFO', 'replication');
  if (infoField(info, 'master_link_status') !== 'up' || infoField(info, 'master_sync_in_progress') !== '0') {
    throw new Error(`replica ${port} has not finished its first sync`);
  }
  return true;
}
