import { execFile, spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';
import { sleep, waitFor } from './wait.js';

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

const SLOTS = 16_384;
/** The cluster bus listens on port + 10000, which must also be a valid, free port. */
const BUS_OFFSET = 10_000;

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
    const ports = await clusterPorts(primaries * (1 + replicasPerPrimary));
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

/**
 * Flags every data node gets. Own dbfilename: a replica renames the snapshot it
 * received to it and loads it back, so replicas sharing a dir could swap data.
 * No diskless-sync delay: the default waits 5 s for more replicas before a sync.
 */
export function dataNodeArgs(port: number, dir: string): string[] {
  return [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    '--dir', dir, '--dbfilename', `dump-${port}.rdb`, '--loglevel', 'warning',
    '--repl-diskless-sync-delay', '0',
  ];
}

/** Distinct free ports whose bus ports (port + 10000) are free and collide with no other chosen port. */
async function clusterPorts(count: number): Promise<number[]> {
  const taken = new Set<number>();
  const ports: number[] = [];
  for (let attempt = 0; ports.length < count; attempt++) {
    if (attempt > 200) throw new Error(`found only ${ports.length} of ${count} free port pairs for the cluster`);
    const port = await freePort();
    const bus = port + BUS_OFFSET;
    if (bus > 65_535 || taken.has(port) || taken.has(bus) || !(await isFree(bus))) continue;
    taken.add(port).add(bus);
    ports.push(port);
  }
  return ports;
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
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

/**
 * Throws (with the reason, for waitFor's message) until the cluster is usable.
 * `--cluster create` returns before that: a primary keeps `cluster_state:fail`
 * for up to 2 s after it started (Redis delays a primary's rejoin on purpose),
 * and replicas are still doing their first sync.
 */
async function clusterSettled(ports: readonly number[], primaries: number, replicasPerPrimary: number): Promise<true> {
  const views = await Promise.all(ports.map((port) => nodeView(port)));
  const expected = topologyKey(views[0]!.nodes);
  for (const [i, view] of views.entries()) {
    const port = ports[i]!;
    if (view.state !== 'ok') throw new Error(`node ${port} says cluster_state:${view.state}`);
    if (view.nodes.length !== ports.length) throw new Error(`node ${port} knows ${view.nodes.length} of ${ports.length} nodes`);
    const flagged = view.nodes.find((n) => n.flags.some((f) => UNHEALTHY_FLAGS.has(f)));
    if (flagged) throw new Error(`node ${port} sees ${flagged.port} as ${flagged.flags.join(',')}`);
    if (topologyKey(view.nodes) !== expected) throw new Error(`node ${port} disagrees on the slot map`);
  }
  const nodes = views[0]!.nodes;
  const owners = nodes.filter((n) => n.slots.length > 0);
  if (owners.length !== primaries) throw new Error(`${owners.length} of ${primaries} primaries own slots`);
  if (coveredSlots(owners) !== SLOTS) throw new Error(`only ${coveredSlots(owners)} of ${SLOTS} slots are covered`);
  const replicas = nodes.filter((n) => n.masterId !== null);
  if (replicas.length !== primaries * replicasPerPrimary) throw new Error(`only ${replicas.length} replicas attached`);
  await Promise.all(replicas.map((r) => replicaLinkUp(r.port)));
  return true;
}

/** A replica is usable once its first sync is done. */
export async function replicaLinkUp(port: number): Promise<true> {
  const info = await command(port, 'INFO', 'replication');
  if (infoField(info, 'master_link_status') !== 'up' || infoField(info, 'master_sync_in_progress') !== '0') {
    throw new Error(`replica ${port} has not finished its first sync`);
  }
  return true;
}

const UNHEALTHY_FLAGS = new Set(['fail', 'fail?', 'handshake', 'noaddr']);

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
async function failedOver(livePorts: readonly number[], deadPort: number, slots: Array<[number, number]>): Promise<number> {
  const views = await Promise.all(livePorts.map((port) => nodeView(port)));
  let owner: number | undefined;
  for (const [i, view] of views.entries()) {
    if (view.state !== 'ok') throw new Error(`node ${livePorts[i]} says cluster_state:${view.state}`);
    for (const [from] of slots) {
      const port = view.nodes.find((n) => n.slots.some(([a, b]) => from >= a && from <= b))?.port;
      if (port === undefined || port === deadPort) throw new Error(`node ${livePorts[i]} still sees slot ${from} on ${port}`);
      if (owner !== undefined && port !== owner) throw new Error(`nodes disagree on who owns slot ${from}`);
      owner = port;
    }
  }
  if (owner === undefined) throw new Error('no live node answered');
  return owner;
}

// --- CLUSTER NODES --------------------------------------------------------

interface ClusterNodeLine {
  id: string;
  port: number;
  flags: string[];
  /** Set on replicas. */
  masterId: string | null;
  slots: Array<[number, number]>;
}

async function nodeView(port: number): Promise<{ state: string; nodes: ClusterNodeLine[] }> {
  const [info, nodes] = await Promise.all([command(port, 'CLUSTER', 'INFO'), command(port, 'CLUSTER', 'NODES')]);
  return { state: infoField(info, 'cluster_state') ?? 'unknown', nodes: parseClusterNodes(nodes) };
}

/** `<id> <ip:port@cport[,hostname]> <flags> <master|-> <ping> <pong> <epoch> <link> <slot>...` per line. */
function parseClusterNodes(text: string): ClusterNodeLine[] {
  return text.split('\n').filter((line) => line.trim() !== '').map((line) => {
    const [id = '', address = '', flags = '', master = '-', , , , , ...slotTokens] = line.trim().split(' ');
    return {
      id,
      port: Number(/:(\d+)@/.exec(address)?.[1] ?? Number.NaN),
      flags: flags.split(',').filter((f) => f !== 'myself'),
      masterId: master === '-' ? null : master,
      // `[slot->-id]` / `[slot-<-id]` are migrations in progress, not ownership.
      slots: slotTokens.filter((t) => !t.startsWith('[')).map(parseSlotRange),
    };
  });
}

function parseSlotRange(token: string): [number, number] {
  const [from = '', to = from] = token.split('-');
  return [Number(from), Number(to)];
}

function coveredSlots(nodes: readonly ClusterNodeLine[]): number {
  return nodes.reduce((sum, n) => sum + n.slots.reduce((s, [from, to]) => s + to - from + 1, 0), 0);
}

/** Who owns which slots and who replicates whom, comparable across nodes' views. */
function topologyKey(nodes: readonly ClusterNodeLine[]): string {
  const portOf = new Map(nodes.map((n) => [n.id, n.port]));
  return nodes
    .map((n) => `${n.port}:${n.masterId === null ? n.slots.map(([a, b]) => `${a}-${b}`).join(' ') : `of ${portOf.get(n.masterId)}`}`)
    .sort()
    .join('\n');
}

export function infoField(info: string, key: string): string | undefined {
  const line = info.split(/\r?\n/).find((l) => l.startsWith(`${key}:`));
  return line?.slice(key.length + 1);
}

// --- processes (shared with redis-sentinel.ts) -------------------------------

export interface RedisProcess {
  readonly port: number;
  readonly pid: number;
  running(): boolean;
  /** Sends `signal` to this process only and waits for its exit; SIGKILL if it lingers. */
  halt(signal: NodeJS.Signals): Promise<void>;
}

const OUTPUT_KEPT = 4000;

export function requireRedisBinaries(who: string, binaries: readonly string[]): void {
  const missing = binaries.filter((bin) => spawnSync(bin, ['--version'], { stdio: 'ignore' }).status !== 0);
  if (missing.length > 0) {
    throw new Error(
      `${who} needs ${binaries.join(' and ')} on PATH but cannot run ${missing.join(', ')}: ` +
        'install them with `apt-get install redis-server` (that package ships both redis-server and redis-cli).',
    );
  }
}

/** Starts `redis-server args` and resolves once it answers PING on `port`; fails fast, with its output, if it exits. */
export async function launchRedis(port: number, args: readonly string[], timeoutMs = 10_000): Promise<RedisProcess> {
  const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString()).slice(-OUTPUT_KEPT);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  let exited = false;
  const exit = new Promise<void>((resolve) => {
    child.once('exit', () => {
      exited = true;
      resolve();
    });
    child.once('error', (err) => {
      output += String(err);
      exited = true;
      resolve();
    });
  });
  const proc: RedisProcess = {
    port,
    pid: child.pid ?? -1,
    running: () => !exited,
    halt: async (signal) => {
      if (exited) return;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exit;
      clearTimeout(timer);
    },
  };
  const deadline = Date.now() + timeoutMs;
  while (!(await answersPing(port))) {
    if (exited) throw new Error(`redis-server on port ${port} exited during startup:\n${output}`);
    if (Date.now() > deadline) {
      await proc.halt('SIGKILL');
      throw new Error(`redis-server on port ${port} did not answer within ${timeoutMs} ms:\n${output}`);
    }
    await sleep(20);
  }
  return proc;
}

/** Starts them in parallel; if any fails, stops the others and rethrows. */
async function launchAll(specs: ReadonlyArray<{ port: number; args: readonly string[] }>): Promise<RedisProcess[]> {
  const results = await Promise.allSettled(specs.map(({ port, args }) => launchRedis(port, args)));
  const started = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await stopAll(started);
    throw failed.reason;
  }
  return started;
}

export async function stopAll(procs: readonly RedisProcess[]): Promise<void> {
  await Promise.all(procs.map((p) => p.halt('SIGTERM')));
}

async function answersPing(port: number): Promise<boolean> {
  try {
    return (await command(port, 'PING')) === 'PONG';
  } catch {
    return false;
  }
}

// --- a tiny RESP2 client: one connection per command ---------------------------

export type RedisReply = string | number | null | Error | RedisReply[];

/** Runs one command on 127.0.0.1:port. Replies read like `redis-cli --raw`; an error reply rejects. */
export function command(port: number, ...args: Array<string | number>): Promise<string> {
  return call(port, args.map(String)).then(formatReply);
}

export function call(port: number, args: readonly string[], timeoutMs = 3000): Promise<RedisReply> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let buffered = Buffer.alloc(0);
    const fail = (err: Error): void => {
      socket.destroy();
      reject(err);
    };
    socket.setTimeout(timeoutMs, () => fail(new Error(`127.0.0.1:${port} did not answer ${args[0]} within ${timeoutMs} ms`)));
    socket.on('error', fail);
    socket.on('close', () => fail(new Error(`127.0.0.1:${port} closed the connection before answering ${args[0]}`)));
    socket.on('connect', () => socket.write(encodeCommand(args)));
    socket.on('data', (chunk) => {
      buffered = Buffer.concat([buffered, chunk]);
      const parsed = parseReply(buffered, 0);
      if (!parsed) return;
      socket.destroy();
      if (parsed.value instanceof Error) reject(parsed.value);
      else resolve(parsed.value);
    });
  });
}

function encodeCommand(args: readonly string[]): string {
  return `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
}

/** One reply starting at `start`, or undefined while it is incomplete. */
function parseReply(buf: Buffer, start: number): { value: RedisReply; end: number } | undefined {
  const lineEnd = buf.indexOf('\r\n', start);
  if (lineEnd < 0) return undefined;
  const line = buf.toString('utf8', start + 1, lineEnd);
  const next = lineEnd + 2;
  switch (String.fromCharCode(buf[start]!)) {
    case '+':
      return { value: line, end: next };
    case '-':
      return { value: new Error(line), end: next };
    case ':':
      return { value: Number(line), end: next };
    case '$': {
      const length = Number(line);
      if (length < 0) return { value: null, end: next };
      if (buf.length < next + length + 2) return undefined;
      return { value: buf.toString('utf8', next, next + length), end: next + length + 2 };
    }
    case '*': {
      const count = Number(line);
      if (count < 0) return { value: null, end: next };
      const items: RedisReply[] = [];
      let at = next;
      for (let i = 0; i < count; i++) {
        const item = parseReply(buf, at);
        if (!item) return undefined;
        items.push(item.value);
        at = item.end;
      }
      return { value: items, end: at };
    }
    default:
      return { value: new Error(`unexpected RESP reply: ${line}`), end: buf.length };
  }
}

function formatReply(reply: RedisReply): string {
  if (reply === null) return '';
  if (reply instanceof Error) return reply.message;
  if (Array.isArray(reply)) return reply.map(formatReply).join('\n');
  return String(reply);
}
