import { createPublicKey } from 'node:crypto';
import { hostname } from 'node:os';
import { CLUSTER_EVENT_TYPES, type ClusterEventType, type RedisTarget } from '@chat/broker';
import { webhookKey, type WebhookSettings } from '@chat/webhooks';
import { ConfigError, EnvReader, LOG_LEVELS, readRedisPrefix, readRedisTarget, type Env, type LogLevel } from '@chat/env';

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
  /** A drain closes its sockets spread over this long (at most 1 ms per socket). */
  readonly drainSpreadMs: number;
  /** An event stream gets a comment after this long without an event (the contract: at most 15 s). */
  readonly sseHeartbeatMs: number;
  readonly brokerTimeoutMs: number;
  readonly presenceTtlMs: number;
  /** How long a send's idempotency key is remembered after its last use. */
  readonly idempotencyTtlMs: number;
  readonly typingIntervalMs: number;
  /**
   * The contract's list limit L: rooms with more users than this get `occupancy`
   * instead of per-user `presence`, coalesced `typing`, and `joined.members` of at most this many.
   */
  readonly memberListLimit: number;
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
  /** postgres://... of the message archive (history past the Redis window); unset: no archive. */
  readonly databaseUrl: string | undefined;
  /** Most messages a join with `since` replays from the archive and the stream together. */
  readonly archiveReplayLimit: number;
  /** With the archive on: unarchived messages a room keeps beyond HISTORY_SIZE while the archiver is behind. */
  readonly archiveHold: number;
  /** Key of the server API (`/api/...`); unset: the API is off. */
  readonly apiKey: string | undefined;
  /** Requests per second the server API takes per key (a token bucket with this burst). */
  readonly apiRateLimitPerSec: number;
  readonly apiRateLimitBurst: number;
  /** How long a "refuse this user's older tokens" lasts: the longest lifetime of a token. */
  readonly tokenRevocationTtlMs: number;
  /** Unset: no events are recorded or delivered. */
  readonly webhooks: WebhookSettings | undefined;
  /**
   * How long after a message in a members-only room its offline members are told
   * of their unread messages (`member.unread`, at most once per window); unset
   * unless webhooks deliver that event.
   */
  readonly unreadWindowMs: number | undefined;
  readonly redisTlsCa: string | undefined;
}

export { ConfigError, type LogLevel };

export function loadConfig(env: Env = process.env): Config {
  const read = new EnvReader(env);
  const historySize = read.int('HISTORY_SIZE', 1000, 1, 1_000_000);
  const webhooks = readWebhooks(read);
  const config: Config = {
    port: read.int('PORT', 8080, 0, 65535),
    host: read.string('HOST', '0.0.0.0'),
    nodeId: read.name('NODE_ID', defaultNodeId()),
    ...readRedis(read),
    redisPrefix: readRedisPrefix(read),
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
    drainTimeoutMs: read.int('DRAIN_TIMEOUT_MS', 20_000, 100, 600_000),
    drainSpreadMs: read.int('DRAIN_SPREAD_MS', 5000, 0, 600_000),
    sseHeartbeatMs: read.int('SSE_HEARTBEAT_MS', 15_000, 100, 15_000),
    brokerTimeoutMs: read.int('BROKER_TIMEOUT_MS', 2000, 50, 60_000),
    presenceTtlMs: read.int('PRESENCE_TTL_MS', 10_000, 200, 3_600_000),
    idempotencyTtlMs: read.int('IDEMPOTENCY_TTL_S', 600, 1, 7 * 24 * 3600) * 1000,
    typingIntervalMs: read.int('TYPING_MIN_INTERVAL_MS', 1000, 0, 60_000),
    memberListLimit: read.int('MEMBER_LIST_LIMIT', 100, 20, 10_000),
    metricsPort: read.optionalInt('METRICS_PORT', 0, 65535),
    metricsEnabled: read.bool('METRICS_ENABLED', true),
    shutdownGraceMs: read.int('SHUTDOWN_GRACE_MS', 0, 0, 600_000),
    ...readSecurity(read),
    databaseUrl: read.optionalUrl('DATABASE_URL', ['postgres:', 'postgresql:']),
    archiveReplayLimit: read.int('ARCHIVE_REPLAY_LIMIT', 2000, 1, 100_000),
    archiveHold: read.int('ARCHIVE_HOLD', 10_000, 0, 10_000_000),
    apiRateLimitPerSec: read.number('API_RATE_LIMIT_PER_SEC', 100, 0.001, 10_000_000),
    apiRateLimitBurst: read.int('API_RATE_LIMIT_BURST', 200, 1, 100_000_000),
    tokenRevocationTtlMs: read.int('TOKEN_REVOCATION_TTL_S', 24 * 3600, 1, 365 * 24 * 3600) * 1000,
    webhooks,
    unreadWindowMs: webhooks?.events.includes('member.unread') ? read.int('WEBHOOK_UNREAD_WINDOW_MS', 10_000, 100, 24 * 3_600_000) : undefined,
  };
  if (config.databaseUrl !== undefined && config.redis === undefined) {
    throw new ConfigError('DATABASE_URL needs a Redis (REDIS_URL, REDIS_CLUSTER_NODES or REDIS_SENTINELS): the archiver reads messages from Redis');
  }
  if (config.shutdownGraceMs + config.drainSpreadMs >= config.drainTimeoutMs) {
    throw new ConfigError(`SHUTDOWN_GRACE_MS (${config.shutdownGraceMs}) + DRAIN_SPREAD_MS (${config.drainSpreadMs}) must be less than DRAIN_TIMEOUT_MS (${config.drainTimeoutMs})`);
  }
  if (config.maxTextLength > config.maxFrameBytes) {
    throw new ConfigError(`MAX_TEXT_LENGTH (${config.maxTextLength}) must not exceed MAX_FRAME_BYTES (${config.maxFrameBytes})`);
  }
  return Object.freeze(config);
}

function readRedis(read: EnvReader) {
  const redisProbeIntervalMs = read.int('REDIS_PROBE_INTERVAL_MS', 1000, 50, 600_000);
  const redisProbeTimeoutMs = read.int('REDIS_PROBE_TIMEOUT_MS', 3000, 100, 600_000);
  if (redisProbeTimeoutMs <= redisProbeIntervalMs) {
    throw new ConfigError(`REDIS_PROBE_TIMEOUT_MS (${redisProbeTimeoutMs}) must be greater than REDIS_PROBE_INTERVAL_MS (${redisProbeIntervalMs})`);
  }
  return {
    redis: readRedisTarget(read),
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
  const jwtPublicKey = read.optionalString('JWT_PUBLIC_KEY')?.replace(/\\n/g, '\n') ?? (keyFile === undefined ? undefined : read.file('JWT_PUBLIC_KEY_FILE', keyFile));
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
    redisTlsCa: caFile === undefined ? undefined : read.file('REDIS_TLS_CA_FILE', caFile),
  };
}


/** Every event but those that quote message text (message.created, message.updated), unless WEBHOOK_EVENTS says otherwise. */
const DEFAULT_WEBHOOK_EVENTS = CLUSTER_EVENT_TYPES.filter((type) => type !== 'message.created' && type !== 'message.updated');

function readWebhooks(read: EnvReader): WebhookSettings | undefined {
  const url = read.optionalUrl('WEBHOOK_URL', ['http:', 'https:']);
  const secret = read.optionalString('WEBHOOK_SECRET');
  if (url === undefined) {
    if (secret !== undefined) throw new ConfigError('WEBHOOK_SECRET is set but WEBHOOK_URL is not: set both, or neither');
    return undefined;
  }
  if (secret === undefined) throw new ConfigError('WEBHOOK_SECRET must be set with WEBHOOK_URL: every delivery is signed with it (whsec_<base64>, or a plain string of at least 16 characters)');
  try {
    webhookKey(secret);
  } catch (err) {
    throw new ConfigError(`WEBHOOK_SECRET ${(err as Error).message}`);
  }
  const listed = read.optionalString('WEBHOOK_EVENTS')?.split(',').map((e) => e.trim()).filter(Boolean);
  for (const type of listed ?? []) {
    if (!(CLUSTER_EVENT_TYPES as readonly string[]).includes(type)) {
      throw new ConfigError(`WEBHOOK_EVENTS: unknown event "${type}"; known: ${CLUSTER_EVENT_TYPES.join(', ')}`);
    }
  }
  const retryMinMs = read.int('WEBHOOK_RETRY_MIN_MS', 1000, 1, 3_600_000);
  const retryMaxMs = read.int('WEBHOOK_RETRY_MAX_MS', 60_000, 1, 24 * 3_600_000);
  if (retryMaxMs < retryMinMs) throw new ConfigError(`WEBHOOK_RETRY_MAX_MS (${retryMaxMs}) must not be less than WEBHOOK_RETRY_MIN_MS (${retryMinMs})`);
  return {
    url,
    secret,
    events: (listed ?? DEFAULT_WEBHOOK_EVENTS) as ClusterEventType[],
    timeoutMs: read.int('WEBHOOK_TIMEOUT_MS', 5000, 10, 600_000),
    retryMinMs,
    retryMaxMs,
    giveUpAfterMs: read.int('WEBHOOK_GIVE_UP_AFTER_S', 24 * 3600, 1, 30 * 24 * 3600) * 1000,
    concurrency: read.int('WEBHOOK_CONCURRENCY', 8, 1, 1000),
    sweepMs: read.int('WEBHOOK_SWEEP_MS', 10_000, 100, 3_600_000),
    leaseMs: read.int('WEBHOOK_LEASE_MS', 10_000, 100, 3_600_000),
    backlogLimit: read.int('WEBHOOK_BACKLOG_LIMIT', 100_000, 100, 100_000_000),
  };
}

function defaultNodeId(): string {
  return `${hostname()}-${process.pid}`.replace(/[^A-Za-z0-9_.:-]/g, '_').slice(-64);
}
