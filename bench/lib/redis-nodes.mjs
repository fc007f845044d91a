// The Redis topologies a benchmark runs on: redis-server processes, joined into a cluster or not.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { freeClusterPorts, waitFor } from '../../packages/proc/dist/index.js';
import { start } from './processes.mjs';

export const waitUntil = (what, check, timeoutMs = 30_000) => waitFor(check, { what, timeoutMs, intervalMs: 100 });
const redisPorts = (count) => freeClusterPorts(count);
export const cli = (port, ...args) => execFileSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args.map(String)], { timeout: 30_000, stdio: ['ignore', 'pipe', 'pipe'] }).toString();
export const infoField = (text, name) => text.split(/\r?\n/).find((l) => l.startsWith(`${name}:`))?.slice(name.length + 1).trim();


export async function startRedisNodes(ports, dir, cluster, redisArgs = []) {
  const nodes = ports.map((port) => ({
    port,
    child: start('redis-server', [
      '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...redisArgs, '--dir', dir,
      '--dbfilename', `dump-${port}.rdb`, '--repl-diskless-sync-delay', '0', '--loglevel', 'warning', '--logfile', join(dir, `redis-${port}.log`),
      // announce-ip: a node that never met another one does not know its own address and
      // hands clients an empty host in CLUSTER SLOTS (the 1-shard cluster); harmless for the others.
      ...(cluster ? ['--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`), '--cluster-announce-ip', '127.0.0.1'] : []),
    ]),
  }));
  for (const { port } of nodes) await waitUntil(`redis ${port}`, () => cli(port, 'ping').trim() === 'PONG', 10_000);
  return nodes;
}

/** Every node says cluster_state:ok and knows every node; every replica has synced. */
export async function clusterSettled(ports) {
  for (const port of ports) {
    if (infoField(cli(port, 'cluster', 'info'), 'cluster_state') !== 'ok') return false;
    const lines = cli(port, 'cluster', 'nodes').trim().split('\n');
    if (lines.length !== ports.length || lines.some((l) => /fail|handshake|noaddr/.test(l.split(' ')[2]))) return false;
    const info = cli(port, 'info', 'replication');
    if (infoField(info, 'role') === 'slave' && (infoField(info, 'master_link_status') !== 'up' || infoField(info, 'master_sync_in_progress') !== '0')) return false;
  }
  return true;
}

/**
 * kind: standalone | cluster. shards, replicas: per topology; redisArgs: extra
 * redis-server flags (persistence). Returns the nodes,
 * the gateway's Redis environment, and the commands used to build it (for the report).
 */
export async function startTopology({ kind, shards = 1, replicas = 0, redisArgs = [] }, dir) {
  const ports = await redisPorts(kind === 'standalone' ? 1 : shards * (1 + replicas));
  const nodes = await startRedisNodes(ports, dir, kind === 'cluster', redisArgs);
  if (kind === 'standalone') return { nodes, primaries: ports, env: { REDIS_URL: `redis://127.0.0.1:${ports[0]}` } };
  if (shards === 1 && replicas === 0) {
    cli(ports[0], 'cluster', 'addslotsrange', 0, 16383);
  } else {
    execFileSync('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', String(replicas), '--cluster-yes'],
      { timeout: 60_000, stdio: ['ignore', 'ignore', 'inherit'] });
  }
  await waitUntil('the cluster to settle', () => clusterSettled(ports), 60_000);
  const primaries = ports.filter((p) => infoField(cli(p, 'info', 'replication'), 'role') === 'master');
  return { nodes, primaries, env: { REDIS_CLUSTER_NODES: ports.map((p) => `127.0.0.1:${p}`).join(',') } };
}

/** WAIT commands run so far by the primaries (INFO commandstats). */
export function waitCalls(topology) {
  return topology.primaries.reduce((total, port) => total + Number(/cmdstat_wait:calls=(\d+)/.exec(cli(port, 'info', 'commandstats'))?.[1] ?? 0), 0);
}

/** Rooms (stream keys) each primary ended up with: how evenly the rooms spread over the shards. */
export function roomsPerPrimary(topology) {
  return topology.primaries.map((port) => {
    const keys = cli(port, '--scan', '--pattern', '*:log').trim().split('\n').filter(Boolean);
    return keys.length;
  });
}
