import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startRedisServer as startRedisProcess, type Child } from '@chat/proc';

export { waitForPing } from '@chat/proc';

/** A Redis server owned by a test: it may be stopped, killed and started again on the same port. */
export interface RedisServer {
  readonly url: string;
  readonly port: number;
  /** Graceful stop (SHUTDOWN: an append-only file is flushed first). */
  stop(): Promise<void>;
  /** SIGKILL (or a container kill), as a crash would. */
  kill(): Promise<void>;
  /** Starts it again on the same port: empty, or from what its persistence kept. */
  start(): Promise<void>;
  /** Stops it and removes its data directory. */
  cleanup(): Promise<void>;
}

/**
 * What a restarted server gets back: nothing (the default, as tests want it
 * fast); the snapshot a test made with SAVE; or an append-only file fsynced
 * once a second or before every reply.
 */
export type RedisPersistence = 'none' | 'snapshot' | 'aof-everysec' | 'aof-always';

export interface RedisServerOptions {
  persistence?: RedisPersistence;
}

const PERSISTENCE_ARGS: Record<Exclude<RedisPersistence, 'none'>, readonly string[]> = {
  snapshot: ['--dbfilename', 'dump.rdb'],
  'aof-everysec': ['--appendonly', 'yes', '--appendfsync', 'everysec'],
  'aof-always': ['--appendonly', 'yes', '--appendfsync', 'always'],
};

const INSTALL_HINT =
  'Tests need Redis: set REDIS_URL, or install redis-server (apt-get install redis-server), ' +
  'or run a Docker engine so testcontainers can start one.';

/**
 * The Redis a test run uses, in this order: REDIS_URL; a redis-server binary on
 * PATH, started on a free port; a testcontainers container; else a clear error.
 */
export async function redisForTests(): Promise<{ url: string; close(): Promise<void> }> {
  const fromEnv = process.env.REDIS_URL?.trim();
  if (fromEnv) return { url: fromEnv, close: async () => {} };
  const server = await startRedisServer();
  return { url: server.url, close: () => server.cleanup() };
}

/** Starts a private Redis: a redis-server binary when there is one, else a container (no persistence). */
export async function startRedisServer({ persistence = 'none' }: RedisServerOptions = {}): Promise<RedisServer> {
  if (hasRedisBinary()) return startBinary(await freePort(), persistence);
  if (persistence !== 'none') throw new Error(`persistence '${persistence}' needs redis-server on PATH (${INSTALL_HINT})`);
  return startContainer(await freePort());
}

export function hasRedisBinary(): boolean {
  return spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
}

async function startBinary(port: number, persistence: RedisPersistence): Promise<RedisServer> {
  let running: Child | null = null;
  // Own directory even without persistence: redis-server would otherwise write into the working directory.
  const dir = await mkdtemp(join(tmpdir(), 'redis-test-'));
  const kept = persistence === 'none' ? [] : PERSISTENCE_ARGS[persistence];
  const launch = async (): Promise<void> => {
    const { child } = await startRedisProcess(port, dir, kept);
    running = child;
    void child.exited.then(() => {
      if (running === child) running = null;
    });
  };
  const halt = async (signal: NodeJS.Signals): Promise<void> => {
    await running?.stop(signal);
  };
  await launch();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    stop: () => halt('SIGTERM'),
    kill: () => halt('SIGKILL'),
    start: launch,
    cleanup: async () => {
      await halt('SIGTERM');
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function startContainer(port: number): Promise<RedisServer> {
  let module: typeof import('@testcontainers/redis');
  try {
    module = await import('@testcontainers/redis');
  } catch (err) {
    throw new Error(INSTALL_HINT, { cause: err });
  }
  type Started = Awaited<ReturnType<InstanceType<typeof module.RedisContainer>['start']>>;
  let container: Started | null = null;
  const launch = async (): Promise<void> => {
    try {
      container = await new module.RedisContainer('redis:7').withExposedPorts({ container: 6379, host: port }).start();
    } catch (err) {
      throw new Error(INSTALL_HINT, { cause: err });
    }
  };
  await launch();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    stop: async () => {
      await container?.stop();
      container = null;
    },
    kill: async () => {
      await container?.stop({ timeout: 0 });
      container = null;
    },
    start: launch,
    cleanup: async () => {
      await container?.stop();
      container = null;
    },
  };
}
