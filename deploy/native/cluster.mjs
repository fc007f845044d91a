#!/usr/bin/env node
// The docker compose topology without Docker: Redis, N gateways and HAProxy (same
// config as compose), optionally Prometheus, all on 127.0.0.1. Ctrl-C stops it all.
//   npm run cluster                          # LB on :8080, 3 gateways, one redis-server
//   npm run cluster -- --gateways 5 --port 9000 --prometheus
//   npm run cluster -- --redis-cluster       # a Redis Cluster instead: 3 primaries + 3 replicas
//   npm run cluster -- --port 0 --json       # free ports; one JSON "ready" line (tests use this)
// Redis keeps its data (append-only file, fsynced every second) in --data-dir, .cluster-data/
// by default, printed at start, so history survives a restart of Redis or of this script:
//   npm run cluster -- --appendfsync always  # an ack means on disk (docs/redis-topologies.md#durability)
//   npm run cluster -- --data-dir /var/tmp/chat
//   npm run cluster -- --ephemeral           # the old mode: Redis in memory only, gone at exit
//   npm run cluster -- --archive             # + PostgreSQL (Debian's binaries) and 2 archivers: history past Redis's window
//   npm run cluster -- --tls                 # + wss:// and https:// on :8443 (--tls-port), a development CA made in
//                                            #   --data-dir/tls unless --tls-cert FILE (certificate, chain and key in one PEM)
// A gateway that exits is started again on its ports (as compose's restart policy does);
// SIGHUP restarts them one after the other, each ready before the next (a rolling deploy):
//   kill -HUP <pid printed at start>         # or: npm run load -- churn --resend --roll <pid>
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { CLUSTER_BUS_OFFSET, freeClusterPorts, freePort, freeStablePort, isPortFree, waitFor } from '../../packages/proc/dist/index.js';
import { localHaproxyConfig } from './haproxy-config.mjs';

const root = fileURLToPath(new URL('../../', import.meta.url));
const args = parseArgs(process.argv.slice(2));
const dir = mkdtempSync(join(tmpdir(), 'chat-cluster-'));
const children = []; // started, in order; stopped in reverse
let stopping = false;
/** 3 primaries + 3 replicas: the smallest cluster that survives losing a primary. */
const CLUSTER_NODES = 6;

function parseArgs(argv) {
  const out = {
    gateways: 3, port: 8080, prometheus: false, redisCluster: false, json: false, env: {},
    dataDir: join(root, '.cluster-data'), ephemeral: false, appendfsync: 'everysec', archive: false, archivers: 2,
    tls: false, tlsPort: undefined, tlsCert: undefined,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--gateways') out.gateways = Number(argv[++i]);
    else if (arg === '--data-dir') out.dataDir = resolve(argv[++i]);
    else if (arg === '--ephemeral') out.ephemeral = true;
    else if (arg === '--archive') out.archive = true;
    else if (arg === '--archivers') out.archivers = Number(argv[++i]);
    else if (arg === '--appendfsync') out.appendfsync = argv[++i];
    else if (arg === '--port') out.port = Number(argv[++i]);
    else if (arg === '--prometheus') out.prometheus = true;
    else if (arg === '--redis-cluster') out.redisCluster = true;
    else if (arg === '--json') out.json = true;
    else if (arg === '--tls') out.tls = true;
    else if (arg === '--tls-port') out.tlsPort = Number(argv[++i]);
    else if (arg === '--tls-cert') { out.tls = true; out.tlsCert = resolve(argv[++i]); }
    else if (arg === '--env') { const [k, ...v] = argv[++i].split('='); out.env[k] = v.join('='); }
    else fail(`unknown argument ${arg}; see the top of deploy/native/cluster.mjs`);
  }
  if (!Number.isInteger(out.gateways) || out.gateways < 1) fail('--gateways must be a positive integer');
  if (!['everysec', 'always'].includes(out.appendfsync)) fail('--appendfsync must be everysec or always');
  return out;
}

function fail(message) {
  process.stderr.write(`cluster: ${message}\n`);
  process.exit(2);
}

function requireCommand(command, install) {
  if (spawnSync('sh', ['-c', `command -v ${command}`]).status !== 0) fail(`${command} is not on PATH: ${install}`);
}


function start(name, command, argv, env = {}, { oneShot = false } = {}) {
  const log = createWriteStream(join(dir, `${name}.log`), { flags: 'a' });
  const child = spawn(command, argv, { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  child.on('exit', (code, signal) => {
    if (!stopping && !oneShot) say(`${name} (pid ${child.pid}) exited: ${signal ?? `status ${code}`}; see ${join(dir, `${name}.log`)}`);
  });
  children.push({ name, child });
  return child;
}

/** A command that should finish by itself; tracked like the rest so that stopping meanwhile stops it too. */
function run(name, command, argv) {
  const child = start(name, command, argv, {}, { oneShot: true });
  return new Promise((resolve, reject) => child.once('exit', (code, signal) => {
    if (code === 0) resolve();
    else reject(new Error(`${name} failed (${signal ?? `status ${code}`}); see ${join(dir, `${name}.log`)}`));
  }));
}


/** Ports a process comes back on: below the kernel's ephemeral range, cluster-bus ports (+10000) included. */
const stablePort = () => freeStablePort(10_000, 22_000);
const clusterPorts = (count, stable) => freeClusterPorts(count, stable ? stablePort : freePort);
const waitUntil = (check, what, timeoutMs = 15_000) => waitFor(check, { what, timeoutMs, intervalMs: 50 });

function say(line) {
  if (!args.json) process.stdout.write(`${line}\n`);
}

function redisCli(port, ...argv) {
  return spawnSync('redis-cli', ['-p', String(port), ...argv]).stdout?.toString() ?? '';
}

/**
 * What the gateways get, and the other two modes' variables blanked: one
 * inherited from this shell would be a second Redis target, a config error.
 */
function redisEnv(mode) {
  return { REDIS_URL: '', REDIS_CLUSTER_NODES: '', REDIS_SENTINELS: '', ...mode };
}

/**
 * How each redis-server keeps data, and where: an append-only file in a directory
 * of `--data-dir` (created on first use), or nothing at all with --ephemeral.
 */
function persistence(name) {
  if (args.ephemeral) return { dir, args: ['--save', '', '--appendonly', 'no', '--dir', dir] };
  const at = join(args.dataDir, name);
  mkdirSync(at, { recursive: true });
  return { dir: at, args: ['--save', '', '--appendonly', 'yes', '--appendfsync', args.appendfsync, '--dir', at] };
}

async function startRedis() {
  const port = await freePort();
  const data = persistence('redis');
  const child = start('redis', 'redis-server', ['--port', String(port), '--bind', '127.0.0.1', ...data.args]);
  // Loading a large append-only file answers LOADING until done.
  await waitUntil(async () => redisCli(port, 'ping').trim() === 'PONG', 'redis', 120_000);
  const url = `redis://127.0.0.1:${port}`;
  return { mode: 'single', url, pids: [child.pid], data: args.ephemeral ? null : data.dir, env: redisEnv({ REDIS_URL: url }) };
}

/**
 * Free ports whose bus port is free too, at most 65535, and clashes with no other
 * chosen port. A cluster kept on disk must come back on the same ports, so those
 * are taken below the kernel's ephemeral range (bus ports included), where no
 * outgoing connection takes them meanwhile.
 */

/**
 * Six cluster-mode redis-servers joined by `redis-cli --cluster create`. Each has
 * its own nodes.conf and files: a replica saves the snapshot it receives under
 * its dbfilename, so two sharing one could load each other's. No diskless-sync
 * delay: the default waits 5 s for more replicas before the first sync. A
 * cluster kept in --data-dir is started again on the ports it was made with
 * (nodes.conf names them), when they are free; otherwise it is made anew.
 */
async function startRedisCluster() {
  const data = persistence('redis-cluster');
  const saved = join(data.dir, 'ports.json');
  let ports = existsSync(saved) ? JSON.parse(readFileSync(saved, 'utf8')) : null;
  if (ports && !(await allFree(ports))) {
    say(`the Redis Cluster kept in ${data.dir} used ports that are taken now: making a new one`);
    ports = null;
  }
  const reuse = ports !== null;
  if (!reuse) {
    if (!args.ephemeral) rmSync(data.dir, { recursive: true, force: true });
    mkdirSync(data.dir, { recursive: true });
    ports = await clusterPorts(CLUSTER_NODES, !args.ephemeral);
  }
  const pids = ports.map((port) => start(`redis-${port}`, 'redis-server', [
    '--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes',
    '--cluster-config-file', join(data.dir, `nodes-${port}.conf`), '--cluster-node-timeout', '2000',
    ...data.args, '--dbfilename', `dump-${port}.rdb`, '--appenddirname', `appendonly-${port}`, '--repl-diskless-sync-delay', '0',
  ]).pid);
  await waitUntil(async () => ports.every((port) => redisCli(port, 'ping').trim() === 'PONG'), 'the Redis Cluster nodes', 120_000);
  const nodes = ports.map((port) => `127.0.0.1:${port}`);
  if (!reuse) {
    await run('redis-cluster-create', 'redis-cli', ['--cluster', 'create', ...nodes, '--cluster-replicas', '1', '--cluster-yes']);
    if (!args.ephemeral) writeFileSync(saved, `${JSON.stringify(ports)}\n`);
  }
  // `create` returns before every node is usable: a new primary stays in
  // cluster_state:fail for up to the node timeout (Redis delays its rejoin on purpose).
  await waitUntil(async () => ports.every((port) => /^cluster_state:ok\r?$/m.test(redisCli(port, 'cluster', 'info'))),
    'cluster_state:ok on every Redis Cluster node', 30_000);
  return { mode: 'cluster', nodes, pids, data: args.ephemeral ? null : data.dir, env: redisEnv({ REDIS_CLUSTER_NODES: nodes.join(',') }) };
}

async function allFree(ports) {
  for (const port of ports) if (!(await isPortFree(port)) || !(await isPortFree(port + CLUSTER_BUS_OFFSET))) return false;
  return true;
}

/** index -> the gateway running in that slot now. */
const gateways = [];
let rolling = false;

const PG_BIN = process.env.PG_BIN ?? '/usr/lib/postgresql/15/bin';

/**
 * PostgreSQL from Debian's binaries, its data in --data-dir (or with the logs
 * when --ephemeral), on a port below the ephemeral range. initdb and postgres
 * refuse to run as root: then they run as the `postgres` user.
 */
async function startPostgres() {
  if (!existsSync(join(PG_BIN, 'postgres'))) fail(`--archive needs PostgreSQL 15's binaries in ${PG_BIN}: apt-get install postgresql (or set PG_BIN)`);
  const base = args.ephemeral ? join(dir, 'postgres') : join(args.dataDir, 'postgres');
  const data = join(base, 'data');
  mkdirSync(base, { recursive: true });
  const asRoot = process.getuid?.() === 0;
  if (asRoot && args.ephemeral) chmodSync(dir, 0o755); // the postgres user must reach its data inside it
  const as = (command, argv) => (asRoot ? ['runuser', ['-u', 'postgres', '--', command, ...argv]] : [command, argv]);
  if (asRoot) spawnSync('chown', ['-R', 'postgres:postgres', base]);
  if (!existsSync(join(data, 'PG_VERSION'))) {
    const init = spawnSync(...as(join(PG_BIN, 'initdb'), ['-D', data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8']), { encoding: 'utf8' });
    if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr}`);
  }
  const port = await stablePort();
  const child = start('postgres', ...as(join(PG_BIN, 'postgres'), ['-D', data, '-p', String(port), '-h', '127.0.0.1', '-k', base]));
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  await waitUntil(async () => spawnSync(join(PG_BIN, 'pg_isready'), ['-h', '127.0.0.1', '-p', String(port)]).status === 0, 'postgres', 60_000);
  spawnSync(join(PG_BIN, 'psql'), ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-c', 'CREATE DATABASE chat']); // fails harmlessly when it exists
  return { url: url.replace(/\/postgres$/, '/chat'), pid: child.pid, data: args.ephemeral ? null : data };
}

async function startArchiver(index, env) {
  const name = `archiver-${index}`;
  const port = await freePort();
  const child = start(name, process.execPath, ['services/archiver/dist/main.js'], {
    NODE_ID: name, HOST: '127.0.0.1', PORT: String(port), ...env,
  });
  await new Promise((resolve, reject) => {
    child.once('exit', () => reject(new Error(`${name} exited during start-up; see ${join(dir, `${name}.log`)}`)));
    createInterface({ input: child.stdout }).on('line', (line) => { if (line.includes('"msg":"listening"')) resolve(); });
  });
  return { name, pid: child.pid, url: `http://127.0.0.1:${port}` };
}

async function startGateway(index, brokerEnv, ports) {
  const nodeId = `gw-${index}`;
  const [port, metricsPort] = ports ?? [await stablePort(), await stablePort()];
  const child = start(nodeId, process.execPath, ['services/gateway/dist/main.js'], {
    NODE_ID: nodeId, HOST: '127.0.0.1', PORT: String(port), METRICS_PORT: String(metricsPort), ...brokerEnv,
    SHUTDOWN_GRACE_MS: '5000', ...args.env, // as in docker-compose.yml
  });
  await new Promise((resolve, reject) => {
    child.once('exit', () => reject(new Error(`${nodeId} exited during start-up; see ${join(dir, `${nodeId}.log`)}`)));
    createInterface({ input: child.stdout }).on('line', (line) => { if (line.includes('"msg":"listening"')) resolve(); });
  });
  const gateway = { index, nodeId, pid: child.pid, port, metricsPort, url: `http://127.0.0.1:${port}`, brokerEnv, child, replacing: false };
  child.once('exit', () => {
    if (stopping || gateway.replacing) return;
    say(`${nodeId} exited: starting it again on port ${port}`);
    setTimeout(() => void replace(gateway).catch((err) => say(`${nodeId}: ${err.message}`)), 1000);
  });
  return gateway;
}

/** Starts a gateway again in its slot, on its ports, and resolves once it is ready. */
async function replace(old) {
  const fresh = await startGateway(old.index, old.brokerEnv, [old.port, old.metricsPort]);
  gateways[old.index - 1] = fresh;
  await waitUntil(async () => (await fetch(`${fresh.url}/readyz`)).ok, `${fresh.nodeId} to be ready`, 30_000);
  return fresh;
}

/** SIGTERM to each gateway in turn; the next only once the restarted one is ready. */
async function roll() {
  if (rolling || stopping) return;
  rolling = true;
  try {
    for (const gateway of [...gateways]) {
      if (stopping) return;
      say(`rolling restart: ${gateway.nodeId}`);
      gateway.replacing = true;
      const exited = new Promise((resolve) => (gateway.child.exitCode !== null ? resolve() : gateway.child.once('exit', resolve)));
      gateway.child.kill('SIGTERM');
      await exited;
      await replace(gateway);
    }
    say('rolling restart: done');
  } catch (err) {
    say(`rolling restart failed: ${err.message}`);
  } finally {
    rolling = false;
  }
}

/**
 * deploy/haproxy/haproxy.cfg with local addresses instead of Docker DNS (haproxy-config.mjs), and a
 * maxconn that fits this shell's file-descriptor limit (HAProxy needs two per connection).
 */
function haproxyConfig(lbPort, statsPort, gateways, tls) {
  const fdLimit = Number(spawnSync('sh', ['-c', 'ulimit -n']).stdout.toString()) || 1024;
  const maxconn = Math.max(100, Math.floor((fdLimit - 100) / 2));
  return localHaproxyConfig({ lbPort, statsPort, servers: gateways.map((g) => ({ name: g.nodeId, port: g.port })), tls, maxconn });
}

/** The certificate HAProxy serves: --tls-cert, or a development one made (once) by deploy/tls/make-dev-cert.sh. */
async function prepareTls() {
  const port = (args.tlsPort ?? (args.port === 0 ? 0 : 8443)) || await freePort();
  if (args.tlsCert !== undefined) {
    if (!existsSync(args.tlsCert)) fail(`--tls-cert ${args.tlsCert}: no such file`);
    return { port, pem: args.tlsCert, ca: undefined };
  }
  requireCommand('openssl', 'install it (apt-get install openssl) or give --tls-cert FILE');
  const certs = args.ephemeral ? join(dir, 'tls') : join(args.dataDir, 'tls');
  await run('tls-dev-cert', 'sh', [join(root, 'deploy/tls/make-dev-cert.sh'), certs]);
  return { port, pem: join(certs, 'chat.pem'), ca: join(certs, 'ca.pem') };
}

async function startPrometheus(gateways) {
  const port = await freePort();
  const config = join(dir, 'prometheus.yml');
  writeFileSync(config, [
    'global: { scrape_interval: 5s, evaluation_interval: 15s }',
    `rule_files: ['${join(root, 'prometheus/alerts.yml')}']`,
    'scrape_configs:',
    '  - job_name: chat-gateway',
    `    static_configs: [{ targets: [${gateways.map((g) => `'127.0.0.1:${g.metricsPort}'`).join(', ')}] }]`,
  ].join('\n'));
  start('prometheus', 'prometheus', [`--config.file=${config}`, `--storage.tsdb.path=${join(dir, 'prometheus-data')}`,
    `--web.listen-address=127.0.0.1:${port}`]);
  await waitUntil(async () => (await fetch(`http://127.0.0.1:${port}/-/ready`)).ok, 'prometheus');
  return `http://127.0.0.1:${port}`;
}

async function stop(code = 0) {
  if (stopping) return;
  stopping = true;
  say('\nstopping...');
  for (const { child } of [...children].reverse()) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  }
  rmSync(dir, { recursive: true, force: true });
  process.exit(code);
}

async function main() {
  requireCommand('redis-server', 'install it (apt-get install redis-server)');
  requireCommand('redis-cli', 'install it (apt-get install redis-server, which ships it)');
  requireCommand('haproxy', 'install it (apt-get install haproxy)');
  if (args.prometheus) requireCommand('prometheus', 'install it (apt-get install prometheus) or drop --prometheus');
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
  process.on('SIGHUP', () => void roll());

  const redis = args.redisCluster ? await startRedisCluster() : await startRedis();
  const postgres = args.archive ? await startPostgres() : undefined;
  const archiveEnv = postgres === undefined ? {} : { DATABASE_URL: postgres.url };
  const archivers = [];
  for (let i = 1; postgres !== undefined && i <= args.archivers; i++) archivers.push(await startArchiver(i, { ...redis.env, ...archiveEnv }));
  for (let i = 1; i <= args.gateways; i++) gateways.push(await startGateway(i, { ...redis.env, ...archiveEnv }));
  // Listening comes before the broker is connected: "ready" means every gateway
  // is, not just the first one the balancer found.
  for (const g of gateways) await waitUntil(async () => (await fetch(`${g.url}/readyz`)).ok, `${g.nodeId} to be ready`);
  const lbPort = args.port === 0 ? await freePort() : args.port;
  const statsPort = await freePort();
  const tls = args.tls ? await prepareTls() : undefined;
  const config = join(dir, 'haproxy.cfg');
  writeFileSync(config, haproxyConfig(lbPort, statsPort, gateways, tls));
  const haproxy = start('haproxy', 'haproxy', ['-f', config, '-db']);
  const lb = `http://127.0.0.1:${lbPort}`;
  await waitUntil(async () => (await fetch(`${lb}/readyz`)).ok, `the load balancer on ${lb}`);
  const prometheus = args.prometheus ? await startPrometheus(gateways) : undefined;

  if (args.json) {
    process.stdout.write(`${JSON.stringify({ event: 'ready', pid: process.pid, lb, ws: `ws://127.0.0.1:${lbPort}/ws`, stats: `http://127.0.0.1:${statsPort}`,
      redisMode: redis.mode, redis: redis.url, redisCluster: redis.nodes, redisPids: redis.pids, redisData: redis.data,
      postgres: postgres?.url, postgresPid: postgres?.pid, archivers,
      wss: tls && `wss://localhost:${tls.port}/ws`, tlsCa: tls?.ca, haproxyConfig: config,
      haproxyPid: haproxy.pid, gateways: gateways.map(({ nodeId, pid, port, metricsPort, url }) => ({ nodeId, pid, port, metricsPort, url })),
      prometheus, logs: dir })}\n`);
  } else {
    say(`chat (load balancer)  ${lb}    WebSocket: ws://127.0.0.1:${lbPort}/ws?user=alice`);
    for (const g of gateways) say(`${g.nodeId.padEnd(22)}${g.url}    metrics: http://127.0.0.1:${g.metricsPort}/metrics`);
    if (tls) say(`chat over TLS         https://localhost:${tls.port}    WebSocket: wss://localhost:${tls.port}/ws${tls.ca ? `    trust ${tls.ca}` : ''}`);
    say(`haproxy stats         http://127.0.0.1:${statsPort}`);
    if (redis.mode === 'cluster') say(`redis cluster         ${redis.nodes.join(' ')}    (3 primaries + 3 replicas)`);
    else say(`redis                 ${redis.url}`);
    say(redis.data === null
      ? 'redis data            none: --ephemeral keeps it in memory only'
      : `redis data            ${redis.data}    (append-only file, appendfsync ${args.appendfsync}; delete it to start empty)`);
    if (postgres) say(`postgres (archive)    ${postgres.url}    data: ${postgres.data ?? 'with the logs (--ephemeral)'}`);
    for (const a of archivers) say(`${a.name.padEnd(22)}${a.url}/metrics`);
    if (prometheus) say(`prometheus            ${prometheus}`);
    say(`logs                  ${dir}\nCtrl-C stops everything; kill -HUP ${process.pid} restarts the gateways one by one.`);
  }
}

main().catch((err) => {
  process.stderr.write(`cluster: ${err.message}\n`);
  void stop(1);
});
