import type { Redis } from 'ioredis';

/**
 * Every value stored under the keys matching `pattern`, as text: each key read
 * by its type, and with `dump` its DUMP too (run with `rdbcompression no`, or
 * a compressed value hides what it holds). For tests that search what a Redis
 * still holds.
 */
export async function redisContents(redis: Redis, pattern: string, { dump = false } = {}): Promise<string> {
  const out: string[] = [];
  for (const key of await redis.keys(pattern)) {
    const type = await redis.type(key);
    if (type === 'stream') out.push(JSON.stringify(await redis.xrange(key, '-', '+')));
    else if (type === 'hash') out.push(JSON.stringify(await redis.hgetall(key)));
    else if (type === 'zset') out.push(JSON.stringify(await redis.zrange(key, 0, -1)));
    else if (type === 'set') out.push(JSON.stringify(await redis.smembers(key)));
    else if (type === 'list') out.push(JSON.stringify(await redis.lrange(key, 0, -1)));
    else if (type === 'string') out.push((await redis.get(key)) ?? '');
    if (dump) out.push((await redis.dumpBuffer(key))?.toString('latin1') ?? '');
  }
  return out.join('\n');
}
