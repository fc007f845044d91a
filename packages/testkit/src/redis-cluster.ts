import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freeClusterPorts, waitFor } from '@chat/proc';
import { clusterSettled, failedOver, nodeView, type ClusterNodeLine } from './cluster-view.js';
import { command } from './redis-admin.js';
import { dataNodeArgs, launchAll, launchRedis, requireRedisBinaries, stopAll, type RedisProcess } from './redis-process.js';

export interface RedisClusterOptions {
  /** At least 3: redis-cli refuses to create a smaller cluster. */
  primaries?: number;
  replicasPerPrimary?: number;
  nodeTimeoutMs?: number;
}

/** A Redis Cluster of local redis-server processes that a test owns. */
export interface RedisClusterHandle {
  readonly nodes: ReadonlyArray<{ port: number; pid: number }>;
  /** Every node as comma-separated `127.0.0.1:port`. */
  readonly seeds: string;
  /** Primaries owning slots, as a live node sees them (a crashed one stays listed until its replica takes over). */
  primaries(): Promise<Array<{ port: number; slots: Array<[number, number]> }>>;
  primaryForSlot(slot: number): Promise<number>;
  replicaOf(primaryPort: number): Promise<number>;
  /** SIGKILL, as a crash would. */
  kill(port: number): Promise<void>;
  /**
   * Starts a killed node again with its cluster config (and no data): a former
   * primary whose slots were taken over rejoins as a replica of the new owner.
   */
  restart(port: number): Promise<void>;
  /** Resolves with the port of the node that took over the killed primary's slots, once live nodes say `cluster_state:ok`. */
  waitForFailover(deadPrimaryPort: number, timeoutMs?: number): Promise<number>;
  /** One command on one node; replies read like `redis-cli --raw`, error replies reject. */
  command(port: number, ...args: Array<string | number>): Promise<string>;
  /** SIGTERM to every node still running, then removes the temp dir. */
  stop(): Promise<void>;
}


/**
 * Starts primaries × (1 + replicasPerPrimary) redis-server processes, joins
 * them with `redis-cli --cluster create`, and resolves once every node agrees
 * on the slot map, says `cluster_state:ok`, and every replica has synced.
 */
export async function startRedisCluster(options: RedisClusterOptions = {}): Promise<RedisClusterHandle> {
  const { primaries = 3, replicasPerPrimary = 1, nodeTimeoutMs = 1000 } = options;
  if (primaries < 3) throw new Error(`a Redis Cluster needs at least 3 primaries, not ${primaries}`);
  requireRedisBinaries('startRedisCluster', ['redis-server', 'redis-cli']);
  const dir = await mkdtemp(join(tmpdir(), 'redis-cluster-'));
  let nodes: RedisProcess[] = [];
  try {
    const ports = await freeClusterPorts(primaries * (1 + replicasPerPrimary));
    nodes = await launchAll(ports.map((port) => ({ port, args: [...dataNodeArgs(port, dir), ...clusterArgs(port, dir, nodeTimeoutMs)] })));
    await createCluster(ports, replicasPerPrimary);
    await waitFor(() => clusterSettled(ports, primaries, replicasPerPrimary), {
      timeoutMs: 30_000,
      intervalMs: 50,
      what: 'the new cluster to settle',
    });
  } catch (err) {
    await stopAll(nodes);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return clusterHandle(nodes, dir, nodeTimeoutMs);
}

function clusterArgs(port: number, dir: string, nodeTimeoutMs: number): string[] {
  return [
    '--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`),
    '--cluster-node-timeout', String(nodeTimeoutMs),
  ];
}

async function createCluster(ports: readonly number[], replicasPerPrimary: number): Promise<void> {
  const args = ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`),
    '--cluster-replicas', String(replicasPerPrimary), '--cluster-yes'];
  await new Promise<void>((resolve, reject) => {
    execFile('redis-cli', args, { timeout: 30_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`redis-cli --cluster create failed: ${err.message}\n${stdout}${stderr}`));
      else resolve();
    });
  });
}

function clusterHandle(nodes: RedisProcess[], dir: string, nodeTimeoutMs: number): RedisClusterHandle {
  const byPort = new Map(nodes.map((n) => [n.port, n]));
  /** The slots each killed node owned just before the kill: what its replica must take over. */
  const killedSlots = new Map<number, Array<[number, number]>>();
  const live = (): RedisProcess[] => nodes.filter((n) => n.running());
  const someLive = (): number => {
    const node = live()[0];
    if (!node) throw new Error('no node of the cluster is running');
    return node.port;
  };
  const view = async (): Promise<ClusterNodeLine[]> => (await nodeView(someLive())).nodes;
  const node = (port: number): RedisProcess => {
    const found = byPort.get(port);
    if (!found) throw new Error(`port ${port} is not a node of this cluster (${[...byPort.keys()].join(', ')})`);
    return found;
  };
  return {
    nodes: nodes.map(({ port, pid }) => ({ port, pid })),
    seeds: nodes.map((n) => `127.0.0.1:${n.port}`).join(','),
    primaries: async () => (await view()).filter((n) => n.slots.length > 0).map(({ port, slots }) => ({ port, slots })),
    primaryForSlot: async (slot) => {
      const owner = (await view()).find((n) => n.slots.some(([from, to]) => slot >= from && slot <= to));
      if (!owner) throw new Error(`no node owns slot ${slot}`);
      return owner.port;
    },
    replicaOf: async (primaryPort) => {
      const all = await view();
      const primary = all.find((n) => n.port === primaryPort);
      const replica = all.find((n) => n.masterId === primary?.id && !n.flags.includes('fail'));
      if (!primary || !replica) throw new Error(`no live replica of ${primaryPort}`);
      return replica.port;
    },
    kill: async (port) => {
      const target = node(port);
      const before = (await view().catch(() => [])).find((n) => n.port === port);
      killedSlots.set(port, before?.slots ?? []);
      await target.halt('SIGKILL');
    },
    restart: async (port) => {
      const index = nodes.findIndex((n) => n.port === port);
      if (index < 0) throw new Error(`port ${port} is not a node of this cluster`);
      if (nodes[index]!.running()) throw new Error(`node ${port} is still running`);
      const proc = await launchRedis(port, [...dataNodeArgs(port, dir), ...clusterArgs(port, dir, nodeTimeoutMs)]);
      nodes[index] = proc;
      byPort.set(port, proc);
    },
    waitForFailover: async (deadPrimaryPort, timeoutMs = Math.max(20_000, nodeTimeoutMs * 20)) => {
      const slots = killedSlots.get(deadPrimaryPort);
      if (!slots) throw new Error(`kill(${deadPrimaryPort}) first: only a killed primary fails over`);
      if (slots.length === 0) throw new Error(`${deadPrimaryPort} owned no slots when it was killed`);
      return waitFor(() => failedOver(live().map((n) => n.port), deadPrimaryPort, slots), {
        timeoutMs,
        intervalMs: 50,
        what: `a replica to take over the slots of ${deadPrimaryPort}`,
      });
    },
    command: (port, ...args) => command(port, ...args),
    stop: async () => {
      await stopAll(nodes);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The new owner of the dead primary's slots, once every live node agrees on it and says `cluster_state:ok`. */
