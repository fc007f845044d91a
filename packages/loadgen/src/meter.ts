import { cpuSeconds, rssBytes } from '@chat/proc';
import { collectGarbage } from './inspector-gc.js';
import { sampleRedis, type RedisSample } from './redis-info.js';

/**
 * What the system under load used during a window: CPU of the server processes
 * (from /proc: they run on this machine) and of Redis (INFO cpu), script calls
 * and commands Redis ran (INFO commandstats, stats) and the change in its memory
 * (INFO used_memory).
 */
export interface Usage {
  seconds: number;
  /** Sum over the server processes; absent without server PIDs. */
  serverCpuSeconds?: number;
  redis?: { cpuSeconds: number; scripts: number; commands: number; memoryBytes: number };
}

interface Mark {
  at: number;
  serverCpu: number;
  redis: RedisSample | undefined;
}

export class Meter {
  constructor(readonly serverPids: readonly number[], readonly redisUrls: readonly string[], readonly inspectorPorts: readonly number[] = []) {}

  async mark(): Promise<Mark> {
    return { at: performance.now(), serverCpu: this.#serverCpu(), redis: await this.#redis() };
  }

  async since(mark: Mark): Promise<Usage> {
    const [serverCpu, redis] = [this.#serverCpu(), await this.#redis()];
    const usage: Usage = { seconds: round((performance.now() - mark.at) / 1000, 3) };
    if (this.serverPids.length > 0) usage.serverCpuSeconds = round(serverCpu - mark.serverCpu, 3);
    if (redis !== undefined && mark.redis !== undefined) {
      usage.redis = {
        cpuSeconds: round(redis.cpuSeconds - mark.redis.cpuSeconds, 3),
        scripts: redis.scriptCalls - mark.redis.scriptCalls,
        // Less the INFO of the closing sample, which the opening one did not count.
        commands: Math.max(0, redis.commands - mark.redis.commands - this.redisUrls.length),
        memoryBytes: redis.usedMemory - mark.redis.usedMemory,
      };
    }
    return usage;
  }

  /** Resident memory of the server processes together, bytes (0 without server PIDs). */
  serverRss(): number {
    return this.serverPids.reduce((total, pid) => total + rssBytes(pid), 0);
  }

  /** The same after a full garbage collection in each server (undefined without their inspector ports). */
  async serverRssAfterGc(): Promise<number | undefined> {
    if (this.inspectorPorts.length === 0) return undefined;
    await collectGarbage(this.inspectorPorts);
    await new Promise((resolve) => setTimeout(resolve, 200)); // freed pages go back to the system
    return this.serverRss();
  }

  #serverCpu(): number {
    return this.serverPids.reduce((total, pid) => total + cpuSeconds(pid), 0);
  }

  #redis(): Promise<RedisSample | undefined> {
    return this.redisUrls.length > 0 ? sampleRedis(this.redisUrls) : Promise.resolve(undefined);
  }
}

/** Per-event cost of a window, µs of CPU per event (server, Redis), scripts per event, rates. */
export interface Cost {
  seconds: number;
  events: number;
  serverCpuPercent?: number;
  serverCpuUs?: number;
  redisCpuPercent?: number;
  redisCpuUs?: number;
  redisScriptsPerSec?: number;
  redisScriptsPer?: number;
  redisCommandsPerSec?: number;
  redisCommandsPer?: number;
}

export function cost(usage: Usage, events: number): Cost {
  const n = Math.max(1, events);
  const s = Math.max(0.001, usage.seconds);
  const out: Cost = { seconds: usage.seconds, events };
  if (usage.serverCpuSeconds !== undefined) {
    out.serverCpuPercent = round((usage.serverCpuSeconds / s) * 100, 1);
    out.serverCpuUs = round((usage.serverCpuSeconds / n) * 1e6, 2);
  }
  if (usage.redis !== undefined) {
    out.redisCpuPercent = round((usage.redis.cpuSeconds / s) * 100, 2);
    out.redisCpuUs = round((usage.redis.cpuSeconds / n) * 1e6, 2);
    out.redisScriptsPerSec = round(usage.redis.scripts / s, 2);
    out.redisScriptsPer = round(usage.redis.scripts / n, 3);
    out.redisCommandsPerSec = round(usage.redis.commands / s, 2);
    out.redisCommandsPer = round(usage.redis.commands / n, 3);
  }
  return out;
}

export function round(n: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}
