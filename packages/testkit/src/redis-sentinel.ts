import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitFor } from '@chat/proc';
import { call, command, infoField, replicaLinkUp, type RedisReply } from './redis-admin.js';
import { dataNodeArgs, launchRedis, requireRedisBinaries, stopAll, type RedisProcess } from './redis-process.js';

export interface RedisSentinelOptions {
  downAfterMs?: number;
  failoverTimeoutMs?: number;
}

/** One primary, one replica and one sentinel (quorum 1), all local processes a test owns. */
export interface RedisSentinelHandle {
  readonly masterName: 'mymaster';
  /** `127.0.0.1:port` of the sentinel. */
  readonly sentinels: string;
  /** The primary and replica at startup; after a failover ask currentPrimary(). */
  readonly primaryPort: number;
  readonly replicaPort: number;
  /** The primary's port, as the sentinel reports it. */
  currentPrimary(): Promise<number>;
  /** SIGKILL, as a crash would. */
  kill(port: number): Promise<void>;
  /**
   * Starts a killed data node again with its first arguments (empty: nothing is
   * persisted), as a replica of `replicaOf` when given (else a former primary comes
   * back as a primary, until the sentinel demotes it, which takes it ~10 s).
   * Resolves once it answers PING.
   */
  restart(port: number, options?: { replicaOf?: number }): Promise<void>;
  /**
   * Resolves once `port` is a replica whose link to its primary is up and synced,
   * and the primary lists it online: only then does WAIT count it.
   */
  waitForReplica(port: number, timeoutMs?: number): Promise<void>;
  /** Resolves with the new primary's port once the sentinel reports it and it says role:master. */
  waitForFailover(oldPrimaryPort: number, timeoutMs?: number): Promise<number>;
  /** One command on one process; replies read like `redis-cli --raw`, error replies reject. */
  command(port: number, ...args: Array<string | number>): Promise<string>;
  /** SIGTERM to every process still running, then removes the temp dir. */
  stop(): Promise<void>;
}

const MASTER = 'mymaster';

/**
 * Starts the primary, then the replica, waits for its first sync, and only
 * then the sentinel: a sentinel learns replicas from the primary's INFO, which
 * it reads at once on connect but then only every 10 s.
 */
export async function startRedisSentinel(options: RedisSentinelOptions = {}): Promise<RedisSentinelHandle> {
  const { downAfterMs = 1000, failoverTimeoutMs = 3000 } = options;
  requireRedisBinaries('startRedisSentinel', ['redis-server']);
  const dir = await mkdtemp(join(tmpdir(), 'redis-sentinel-'));
  const procs: RedisProcess[] = [];
  const argsByPort = new Map<number, readonly string[]>();
  const launch = async (port: number, args: readonly string[]): Promise<RedisProcess> => {
    const proc = await launchRedis(port, args);
    procs.push(proc);
    argsByPort.set(port, args);
    return proc;
  };
  try {
    const primaryPort = await freePort();
    const primary = await launch(primaryPort, dataNodeArgs(primaryPort, dir));
    const replicaPort = await freePort();
    const replica = await launch(replicaPort, [...dataNodeArgs(replicaPort, dir), '--replicaof', '127.0.0.1', String(primaryPort)]);
    await waitFor(() => replicaLinkUp(replica.port), { what: `replica ${replica.port} to sync` });
    const sentinelPort = await freePort();
    const config = join(dir, 'sentinel.conf');
    await writeFile(config, sentinelConfig(sentinelPort, primary.port, dir, downAfterMs, failoverTimeoutMs));
    await launch(sentinelPort, [config, '--sentinel']);
    await waitFor(() => sentinelReady(sentinelPort, primary.port, replica.port), {
      what: 'the sentinel to see the primary and the replica',
    });
    return sentinelHandle(procs, launch, argsByPort, dir, sentinelPort, primary.port, replica.port);
  } catch (err) {
    await stopAll(procs);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** Sentinel rewrites this file (myid, known replicas), so it lives in the temp dir. */
function sentinelConfig(port: number, primaryPort: number, dir: string, downAfterMs: number, failoverTimeoutMs: number): string {
  return [
    `port ${port}`,
    'bind 127.0.0.1',
    `dir ${dir}`,
    'sentinel resolve-hostnames no',
    `sentinel monitor ${MASTER} 127.0.0.1 ${primaryPort} 1`,
    `sentinel down-after-milliseconds ${MASTER} ${downAfterMs}`,
    `sentinel failover-timeout ${MASTER} ${failoverTimeoutMs}`,
    '',
  ].join('\n');
}

/**
 * Ready once the sentinel has read the replica's own INFO (master-link-status
 * ok): until then it would not pick that replica in a failover.
 */
async function sentinelReady(sentinelPort: number, primaryPort: number, replicaPort: number): Promise<true> {
  const master = await masterPort(sentinelPort);
  if (master !== primaryPort) throw new Error(`the sentinel reports primary ${master}, not ${primaryPort}`);
  const replicas = await call(sentinelPort, ['SENTINEL', 'REPLICAS', MASTER]);
  const replica = asRecords(replicas).find((r) => r.port === String(replicaPort));
  if (!replica) throw new Error(`the sentinel has not discovered replica ${replicaPort}`);
  if (replica['master-link-status'] !== 'ok' || /s_down|disconnected/.test(replica.flags ?? '')) {
    throw new Error(`the sentinel sees replica ${replicaPort} as ${replica.flags}, link ${replica['master-link-status']}`);
  }
  return true;
}

async function masterPort(sentinelPort: number): Promise<number> {
  const reply = await call(sentinelPort, ['SENTINEL', 'GET-MASTER-ADDR-BY-NAME', MASTER]);
  const port = Array.isArray(reply) ? Number(reply[1]) : Number.NaN;
  if (!Number.isInteger(port)) throw new Error(`the sentinel does not know ${MASTER}`);
  return port;
}

/** SENTINEL REPLICAS answers a list of flat [field, value, ...] lists. */
function asRecords(reply: RedisReply): Array<Record<string, string>> {
  if (!Array.isArray(reply)) return [];
  return reply.filter(Array.isArray).map((fields) => {
    const record: Record<string, string> = {};
    for (let i = 0; i + 1 < fields.length; i += 2) record[String(fields[i])] = String(fields[i + 1]);
    return record;
  });
}

function sentinelHandle(
  procs: RedisProcess[],
  launch: (port: number, args: readonly string[]) => Promise<RedisProcess>,
  argsByPort: ReadonlyMap<number, readonly string[]>,
  dir: string, sentinelPort: number, primaryPort: number, replicaPort: number,
): RedisSentinelHandle {
  const byPort = new Map(procs.map((p) => [p.port, p]));
  return {
    masterName: MASTER,
    sentinels: `127.0.0.1:${sentinelPort}`,
    primaryPort,
    replicaPort,
    currentPrimary: () => masterPort(sentinelPort),
    kill: async (port) => {
      const proc = byPort.get(port);
      if (!proc) throw new Error(`port ${port} is not a process of this setup (${[...byPort.keys()].join(', ')})`);
      await proc.halt('SIGKILL');
    },
    restart: async (port, { replicaOf } = {}) => {
      const args = argsByPort.get(port);
      if (!args || port === sentinelPort) throw new Error(`port ${port} is not a data node of this setup`);
      if (byPort.get(port)?.running()) throw new Error(`port ${port} is still running`);
      const base = args.slice(0, args.indexOf('--replicaof') >= 0 ? args.indexOf('--replicaof') : args.length);
      const role = replicaOf === undefined ? [] : ['--replicaof', '127.0.0.1', String(replicaOf)];
      byPort.set(port, await launch(port, [...base, ...role]));
    },
    waitForReplica: async (port, timeoutMs = 20_000) => {
      await waitFor(() => onlineReplica(port), { timeoutMs, intervalMs: 50, what: `${port} to become a synced replica` });
    },
    waitForFailover: (oldPrimaryPort, timeoutMs = 20_000) =>
      waitFor(() => promoted(sentinelPort, oldPrimaryPort), { timeoutMs, intervalMs: 50, what: `a failover away from ${oldPrimaryPort}` }),
    command: (port, ...args) => command(port, ...args),
    stop: async () => {
      await stopAll(procs);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The sentinel's new answer, once that node itself says role:master (so the next client can write). */
async function promoted(sentinelPort: number, oldPrimaryPort: number): Promise<number> {
  const port = await masterPort(sentinelPort);
  if (port === oldPrimaryPort) throw new Error(`the sentinel still reports ${oldPrimaryPort}`);
  const role = infoField(await command(port, 'INFO', 'replication'), 'role');
  if (role !== 'master') throw new Error(`the sentinel reports ${port}, which says role:${role}`);
  return port;
}

/** True once `port` is synced with its primary and the primary reports it `state=online`. */
async function onlineReplica(port: number): Promise<true> {
  await replicaLinkUp(port);
  const primary = infoField(await command(port, 'INFO', 'replication'), 'master_port');
  const listed = (await command(Number(primary), 'INFO', 'replication')).split(/\r?\n/).some((line) =>
    /^slave\d+:/.test(line) && line.includes(`port=${port},`) && line.includes('state=online'));
  if (!listed) throw new Error(`primary ${primary} does not list ${port} as an online replica yet`);
  return true;
}
