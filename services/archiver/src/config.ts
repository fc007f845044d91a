import { hostname } from 'node:os';
import type { RedisTarget } from '@chat/broker';
import { ConfigError, EnvReader, LOG_LEVELS, readRedisPrefix, readRedisTarget, type Env, type LogLevel } from '@chat/env';

/** Validated, frozen settings of an archiver; `loadConfig` is the only place that reads the environment. */
export interface ArchiverConfig {
  readonly databaseUrl: string;
  readonly redis: RedisTarget;
  readonly redisPrefix: string;
  /** This instance, in leases and logs. */
  readonly nodeId: string;
  readonly host: string;
  /** /healthz, /readyz and /metrics. */
  readonly port: number;
  readonly logLevel: LogLevel;
  /** Messages read from one room per cycle, at most. */
  readonly batchSize: number;
  /** Rooms archived per cycle (one transaction), at most. */
  readonly roomsPerCycle: number;
  /** Pause between cycles while there is nothing to do: the archive's lag when idle. */
  readonly cycleMs: number;
  /** How often every room set is read in full, for rooms whose wake-up was missed. */
  readonly sweepMs: number;
  /** A room's lease: an archiver that dies holds its rooms at most this long. */
  readonly leaseMs: number;
  /** 0: keep forever. */
  readonly retentionDays: number;
  readonly brokerTimeoutMs: number;
}

export { ConfigError };

export function loadConfig(env: Env = process.env): ArchiverConfig {
  const read = new EnvReader(env);
  const databaseUrl = read.optionalUrl('DATABASE_URL', ['postgres:', 'postgresql:']);
  if (databaseUrl === undefined) throw new ConfigError('DATABASE_URL must be set (postgres://user@host:5432/db): the archiver writes there');
  const redis = readRedisTarget(read);
  if (redis === undefined) throw new ConfigError('set REDIS_URL, REDIS_CLUSTER_NODES or REDIS_SENTINELS: the archiver reads the rooms there');
  const config: ArchiverConfig = {
    databaseUrl,
    redis,
    redisPrefix: readRedisPrefix(read),
    nodeId: read.name('NODE_ID', `${hostname()}-${process.pid}`.replace(/[^A-Za-z0-9_.:-]/g, '_').slice(-64)),
    host: read.string('HOST', '0.0.0.0'),
    port: read.int('PORT', 9092, 0, 65535),
    logLevel: read.oneOf('LOG_LEVEL', 'info', LOG_LEVELS),
    batchSize: read.int('ARCHIVE_BATCH', 1000, 1, 100_000),
    roomsPerCycle: read.int('ARCHIVE_ROOMS_PER_CYCLE', 200, 1, 10_000),
    cycleMs: read.int('ARCHIVE_CYCLE_MS', 100, 1, 60_000),
    sweepMs: read.int('ARCHIVE_SWEEP_MS', 5000, 100, 3_600_000),
    leaseMs: read.int('ARCHIVE_LEASE_MS', 10_000, 500, 600_000),
    retentionDays: read.int('ARCHIVE_RETENTION_DAYS', 0, 0, 100_000),
    brokerTimeoutMs: read.int('BROKER_TIMEOUT_MS', 2000, 50, 60_000),
  };
  return Object.freeze(config);
}
