import { readFileSync } from 'node:fs';
import type { HostPort, RedisTarget } from '@chat/broker';
import { NAME_PATTERN } from '@chat/protocol';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export type Env = Readonly<Record<string, string | undefined>>;

/** A setting that is missing, malformed or contradicts another; the message names it. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** The Redis target from REDIS_URL / REDIS_CLUSTER_NODES / REDIS_SENTINELS (+ REDIS_SENTINEL_MASTER, REDIS_USERNAME, REDIS_PASSWORD). */
/**
 * REDIS_PREFIX, which starts every key: braces would make Redis Cluster hash
 * a room's keys by the prefix instead of the room's own tag `{room}`.
 */
export function readRedisPrefix(read: EnvReader): string {
  const prefix = read.string('REDIS_PREFIX', 'chat:');
  if (/[{}]/.test(prefix)) throw new ConfigError(`REDIS_PREFIX must not contain { or }, got "${prefix}": a room's keys share its own hash tag`);
  return prefix;
}

export function readRedisTarget(read: EnvReader): RedisTarget | undefined {
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
  return url !== undefined ? { mode: 'standalone', url }
    : clusterNodes !== undefined ? { mode: 'cluster', nodes: clusterNodes, ...credentials }
      : sentinels !== undefined ? { mode: 'sentinel', sentinels, masterName, ...credentials }
        : undefined;
}

/** Reads and validates environment variables; every error names the variable. */
export class EnvReader {
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

  /** The contents of the file at `path`, which variable `name` gave. */
  file(name: string, path: string): string {
    return readFileNamed(name, path);
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
      throw new ConfigError(`${name} must be a URL such as ${protocols[0]}//host, got "${redact(raw)}"`);
    }
    if (!protocols.includes(url.protocol)) {
      throw new ConfigError(`${name} must use ${protocols.map((p) => `${p}//`).join(' or ')}, got "${redact(raw)}"`);
    }
    return raw;
  }
}

/** Reads the file a variable names; the error names the variable. */
export function readFileNamed(name: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`${name}: cannot read ${path}: ${(err as Error).message}`);
  }
}

/** Never echo a password from a URL into logs. */
function redact(raw: string): string {
  return raw.replace(/\/\/[^@/]*@/, '//***@');
}

/**
 * Runs a service's config loader on the environment; on a ConfigError prints
 * it (it names the variable) and exits with status 2, before anything starts.
 */
export function loadConfigOrExit<T>(load: (env: Env) => T, env: Env = process.env): T {
  try {
    return load(env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`configuration error: ${err.message}\n`);
    process.exit(2);
  }
}
