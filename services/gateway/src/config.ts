import { createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { HostPort, RedisTarget } from '@chat/broker';
import { NAME_PATTERN } from '@chat/protocol';

/** Validated, frozen settings. `loadConfig` is the only place that reads the environment. */
export interface Config {
  readonly port: number;
  readonly host: string;
  readonly nodeId: string;
  /** Unset: a single node on the in-process broker. */
  readonly redis: RedisTarget | undefined;
  readonly redisPrefix: string;
  /** Replicas an append must reach (WAIT) before its ack; 0: the primary's write is enough. */
  readonly redisWaitReplicas: number;
  readonly redisWaitTimeoutMs: number;
  /** The deaf-subscriber check: how often each subscriber connection probes itself, and how long it waits. */
  readonly redisProbeIntervalMs: number;
  readonly redisProbeTimeoutMs: number;
  readonly logLevel: LogLevel;
  readonly historySize: number;
  readonly joinHistory: number;
  readonly maxFrameBytes: number;
  readonly maxTextLength: number;
  readonly maxRoomsPerConnection: number;
  readonly rateLimitPerSec: number;
  readonly rateLimitBurst: number;
  readonly rateLimitCloseAfter: number;
  readonly sendBufferBytes: number;
  readonly idleTimeoutSec: number;
  readonly drainTimeoutMs: number;
  readonly brokerTimeoutMs: number;
  readonly presenceTtlMs: number;
  /** How long a send's idempotency key is remembered after its last use. */
  readonly idempotencyTtlMs: number;
  readonly typingIntervalMs: number;
  /** Unset: /metrics is served on PORT. */
  readonly metricsPort: number | undefined;
  readonly metricsEnabled: boolean;
  readonly shutdownGraceMs: number;
  /** HS256 secret; or, with jwtPublicKey, RS256/ES256 tokens. */
  readonly jwtSecret: string | undefined;
  readonly jwtPublicKey: string | undefined;
  readonly jwtIssuer: string | undefined;
  readonly jwtAudience: string | undefined;
  /** Whether `?user=` identities are accepted (DEV_IDENTITY; by default only without a JWT key). */
  readonly devIdentity: boolean;
  /** Origins allowed to open WebSockets from a browser; null: any. */
  readonly allowedOrigins: readonly string[] | null;
  /** 0: no limit. */
  readonly maxConnectionsPerUser: number;
  readonly maxConnectionsPerIp: number;
  readonly trustedProxies: ReadonlySet<string>;
  readonly dmsEnabled: boolean;
  /** Key of the server-side publish API; unset: the API is off. */
  readonly apiKey: string | undefined;
  readonly redisTlsCa: string | undefined;
}

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

type Env = Readonly<Record<string, string | undefined>>;

export function loadConfig(env: Env = process.env): Config {
  const read = new EnvReader(env);
  const historySize = read.int('HISTORY_SIZE', 1000, 1, 1_000_000);
  const config: Config = {
    port: read.int('PORT', 8080, 0, 65535),
    host: read.string('HOST', '0.0.0.0'),
    nodeId: read.name('NODE_ID', defaultNodeId()),
    ...readRedis(read),
    redisPrefix: read.string('REDIS_PREFIX', 'chat:'),
    logLevel: read.oneOf('LOG_LEVEL', 'info', LOG_LEVELS),
    historySize,
    joinHistory: read.int('JOIN_HISTORY', Math.min(50, historySize), 0, historySize),
    maxFrameBytes: read.int('MAX_FRAME_BYTES', 64 * 1024, 256, 16 * 1024 * 1024),
    maxTextLength: read.int('MAX_TEXT_LENGTH', 4096, 1, 1024 * 1024),
    maxRoomsPerConnection: read.int('MAX_ROOMS_PER_CONNECTION', 100, 1, 100_000),
    rateLimitPerSec: read.number('RATE_LIMIT_PER_SEC', 30, 0.001, 10_000_000),
    rateLimitBurst: read.int('RATE_LIMIT_BURST', 100, 1, 100_000_000),
    rateLimitCloseAfter: read.int('RATE_LIMIT_CLOSE_AFTER', 100, 1, 100_000_000),
    sendBufferBytes: read.int('SEND_BUFFER_BYTES', 512 * 1024, 16 * 1024, 1024 * 1024 * 1024),
    idleTimeoutSec: read.int('IDLE_TIMEOUT_S', 60, 8, 3600),
    drainTimeoutMs: read.int('DRAIN_TIMEOUT_MS', 10_000, 100, 600_000),
    brokerTimeoutMs: read.int('BROKER_TIMEOUT_MS', 2000, 50, 60_000),
    presenceTtlMs: read.int('PRESENCE_TTL_MS', 10_000, 200, 3_600_000),
    idempotencyTtlMs: read.int('IDEMPOTENCY_TTL_S', 600, 1, 7 * 24 * 3600) * 1000,
    typingIntervalMs: read.int('TYPING_MIN_INTERVAL_MS', 1000, 0, 60_000),
    metricsPort: read.optionalInt('METRICS_PORT', 0, 65535),
    metricsEnabled: read.bool('METRICS_ENABLED', true),
    shutdownGraceMs: read.int('SHUTDOWN_GRACE_MS', 0, 0, 600_000),
    ...readSecurity(read),
  };
  if (config.shutdownGraceMs >= config.drainTimeoutMs) {
    throw new ConfigError(`SHUTDOWN_GRACE_MS (${config.shutdownGraceMs}) must be less than DRAIN_TIMEOUT_MS (${config.drainTimeoutMs})`);
  }
  if (config.maxTextLength > config.maxFrameBytes) {
    throw new ConfigError(`MAX_TEXT_LENGTH (${config.maxTextLength}) must not exceed MAX_FRAME_BYTES (${config.maxFrameBytes})`);
  }
  return Object.freeze(config);
}

function readRedis(read: EnvReader) {
  const url = read.optionalUrl('REDIS_URL', ['redis:', 'rediss:']);
  const clusterNodes = read.hostPorts('REDIS_CLUSTER_NODES');
  const sentinels = read.hostPorts('REDIS_SENTINELS');
  const chosen = [url && 'REDIS_URL', clusterNodes && 'REDIS_CLUSTER_NODES', sentinels && 'REDIS_SENTINELS'].filter(Boolean);
  if (chosen.length > 1) throw new ConfigError(`set only one of REDIS_URL, REDIS_CLUSTER_NODES and REDIS_SENTINELS; got ${chosen.join(' and ')}`);
  const credentials = { username: read.optionalString('REDIS_USERNAME'), password: read.optionalString('REDIS_PASSWORD') };
  if (url !== undefined && (credentials.username ?? credentials.password) !== undefined) {
    throw new ConfigError('REDIS_USERNAME and REDIS_PASSWORD are for REDIS_CLUSTER_NODES and REDIS_SENTINELS; with REDIS_URL put them in the URL');
  }
  const masterName = read.string('REDIS_SENTINEL_MASTER', 'mymaster');
  const redis: RedisTarget | undefined = url !== undefined ? { mode: 'standalone', url }
    : clusterNodes !== undefined ? { mode: 'cluster', nodes: clusterNodes, ...credentials }
      : sentinels !== undefined ? { mode: 'sentinel', sentinels, masterName, ...credentials }
        : undefined;
  const redisProbeIntervalMs = read.int('REDIS_PROBE_INTERVAL_MS', 1000, 50, 600_000);
  const redisProbeTimeoutMs = read.int('REDIS_PROBE_TIMEOUT_MS', 3000, 100, 600_000);
  if (redisProbeTimeoutMs <= redisProbeIntervalMs) {
    throw new ConfigError(`REDIS_PROBE_TIMEOUT_MS (${redisProbeTimeoutMs}) must be greater than REDIS_PROBE_INTERVAL_MS (${redisProbeIntervalMs})`);
  }
  return {
    redis,
    redisWaitReplicas: read.int('REDIS_WAIT_REPLICAS', 0, 0, 100),
    redisWaitTimeoutMs: read.int('REDIS_WAIT_TIMEOUT_MS', 1000, 1, 60_000),
    redisProbeIntervalMs,
    redisProbeTimeoutMs,
  };
}

function readSecurity(read: EnvReader) {
  const jwtSecret = read.optionalString('JWT_SECRET');
  if (jwtSecret !== undefined && jwtSecret.length < 32) throw new ConfigError('JWT_SECRET must be at least 32 characters (HS256 needs a 256-bit secret)');
  const keyFile = read.optionalString('JWT_PUBLIC_KEY_FILE');
  const jwtPublicKey = read.optionalString('JWT_PUBLIC_KEY')?.replace(/\\n/g, '\n') ?? (keyFile === undefined ? undefined : readOrFail('JWT_PUBLIC_KEY_FILE', keyFile));
  if (jwtPublicKey !== undefined) {
    try {
      const type = createPublicKey(jwtPublicKey).asymmetricKeyType;
      if (type !== 'rsa' && type !== 'ec') throw new Error(`unsupported key type ${type}`);
    } catch (err) {
      throw new ConfigError(`JWT_PUBLIC_KEY must be an RSA or EC public key in PEM: ${(err as Error).message}`);
    }
  }
  if (jwtSecret !== undefined && jwtPublicKey !== undefined) throw new ConfigError('set JWT_SECRET or JWT_PUBLIC_KEY, not both');
  const devMode = read.oneOf('DEV_IDENTITY', 'auto', ['auto', 'on', 'off'] as const);
  const origins = read.optionalString('ALLOWED_ORIGINS');
  const caFile = read.optionalString('REDIS_TLS_CA_FILE');
  return {
    jwtSecret,
    jwtPublicKey,
    jwtIssuer: read.optionalString('JWT_ISSUER'),
    jwtAudience: read.optionalString('JWT_AUDIENCE'),
    devIdentity: devMode === 'on' || (devMode === 'auto' && jwtSecret === undefined && jwtPublicKey === undefined),
    allowedOrigins: origins === undefined || origins === '*' ? null : origins.split(',').map((o) => o.trim()).filter(Boolean),
    maxConnectionsPerUser: read.int('MAX_CONNECTIONS_PER_USER', 20, 0, 1_000_000),
    maxConnectionsPerIp: read.int('MAX_CONNECTIONS_PER_IP', 0, 0, 10_000_000),
    trustedProxies: new Set((read.optionalString('TRUSTED_PROXIES') ?? '').split(',').map((p) => p.trim()).filter(Boolean)),
    dmsEnabled: read.bool('DMS_ENABLED', true),
    apiKey: read.optionalString('API_KEY'),
    redisTlsCa: caFile === undefined ? undefined : readOrFail('REDIS_TLS_CA_FILE', caFile),
  };
}

function readOrFail(name: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`${name}: cannot read ${path}: ${(err as Error).message}`);
  }
}

function defaultNodeId(): string {
  return `${hostname()}-${process.pid}`.replace(/[^A-Za-z0-9_.:-]/g, '_').slice(-64);
}

class EnvReader {
  constructor(private readonly env: Env) {}

  #raw(name: string): string | undefined {
    const value = this.env[name]?.trim();
    return value === '' ? undefined : value;
  }

  optionalString(name: string): string | undefined {
    return this.#raw(name);
  }

  string(name: string, fallback: string): string {
    return this.#raw(name) ?? fallback;
  }

  name(name: string, fallback: string): string {
    const value = this.#raw(name) ?? fallback;
    if (!NAME_PATTERN.test(value)) throw new ConfigError(`${name} must match ${NAME_PATTERN.source}, got "${value}"`);
    return value;
  }

  number(name: string, fallback: number, min: number, max: number): number {
    const raw = this.#raw(name);
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (!Number.isFinite(value) || value < min || value > max) {
      throw new ConfigError(`${name} must be a number from ${min} to ${max}, got "${raw}"`);
    }
    return value;
  }

  int(name: string, fallback: number, min: number, max: number): number {
    const raw = this.#raw(name);
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (!/^-?\d+$/.test(raw) || value < min || value > max) {
      throw new ConfigError(`${name} must be an integer from ${min} to ${max}, got "${raw}"`);
    }
    return value;
  }

  optionalInt(name: string, min: number, max: number): number | undefined {
    return this.#raw(name) === undefined ? undefined : this.int(name, 0, min, max);
  }

  bool(name: string, fallback: boolean): boolean {
    const raw = this.#raw(name)?.toLowerCase();
    if (raw === undefined) return fallback;
    if (['1', 'true', 'yes', 'on'].includes(raw)) return true;
    if (['0', 'false', 'no', 'off'].includes(raw)) return false;
    throw new ConfigError(`${name} must be true or false, got "${raw}"`);
  }

  oneOf<T extends string>(name: string, fallback: T, allowed: readonly T[]): T {
    const raw = this.#raw(name);
    if (raw === undefined) return fallback;
    if (!(allowed as readonly string[]).includes(raw)) {
      throw new ConfigError(`${name} must be one of ${allowed.join(', ')}, got "${raw}"`);
    }
    return raw as T;
  }

  /** `host:port,host:port` */
  hostPorts(name: string): HostPort[] | undefined {
    const raw = this.#raw(name);
    if (raw === undefined) return undefined;
    return raw.split(',').map((entry) => {
      const match = /^\s*\[?([^\]\s]+?)\]?:(\d{1,5})\s*$/.exec(entry);
      const port = Number(match?.[2]);
      if (match === null || port < 1 || port > 65535) {
        throw new ConfigError(`${name} must be a comma-separated list of host:port, got "${entry.trim()}"`);
      }
      return { host: match[1]!, port };
    });
  }

  optionalUrl(name: string, protocols: readonly string[]): string | undefined {
    const raw = this.#raw(name);
    if (raw === undefined) return undefined;
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      throw new ConfigError(`${name} must be a URL such as redis://host:6379, got "${redact(raw)}"`);
    }
    if (!protocols.includes(url.protocol)) {
      throw new ConfigError(`${name} must use ${protocols.map((p) => `${p}//`).join(' or ')}, got "${redact(raw)}"`);
    }
    return raw;
  }
}

/** Never echo a password from a URL into logs. */
function redact(raw: string): string {
  return raw.replace(/\/\/[^@/]*@/, '//***@');
}
