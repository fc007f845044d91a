#!/usr/bin/env node
// Redis Cluster benchmark: 3 gateways on
//   - one standalone redis-server (reference),
//   - a Redis Cluster of 1 shard (one node owning all 16384 slots, built by hand:
//     `redis-cli --cluster create` wants at least 3 primaries),
//   - a Redis Cluster of 3 shards (3 primaries, no replicas),
//   - a Redis Cluster of 3 primaries + 3 replicas, with REDIS_WAIT_REPLICAS=0 and =1,
// each with the same load-generator shape: a fixed-rate step (delivery latency from
// the load generator, send->ack latency from a probe in this process) and a
// --find-max search. Writes bench/results/redis-cluster.json and the
// "## Redis Cluster" section of BENCHMARKS.md.
// Usage: npm run build && node bench/redis-cluster.mjs [--quick] [--no-write] [--only=standalone,cluster-1,cluster-3,cluster-3x2]
// (about 4-5 minutes; --quick about 2). For exploring, FIXED_RATE, FIND_MAX_START (messages/s),
// FIND_MAX_FACTOR and MAX_STEPS override the defaults; the results record the parameters,
// and the run-to-run table only compares runs made with the same ones.
// Every process it starts (redis-server, gateways, load generator) is stopped by PID
// at the end, on error and on Ctrl-C; all traffic stays on 127.0.0.1.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { childPids, cpuSeconds, freeClusterPorts, waitFor } from '../packages/proc/dist/index.js';

const root = fileURLToPath(new URL('../', import.meta.url));
const RESULTS = join(root, 'bench/results/redis-cluster.json');

// The load: 40 rooms of 25 (1,000 clients), one sender per room, 100-byte messages.
// Many small rooms, so that rooms spread over the shards and Redis work per delivery
// is high (each message is one script call and 3 shard-channel deliveries, then 25 WebSocket writes).
export const SHAPE = ['--rooms', '40', '--members', '25', '--senders', '40', '--size', '100'];
const MEMBERS = 25;
const FIXED_RATE = Number(process.env.FIXED_RATE ?? 400); // messages/s: 10,000 deliveries/s
const FIND_MAX_START = Number(process.env.FIND_MAX_START ?? 1000); // messages/s: 25,000 deliveries/s
const FIND_MAX_FACTOR = Number(process.env.FIND_MAX_FACTOR ?? 1.2);
const KEEP_UP = 0.9; // a find-max step counts only if at least this share of the offered deliveries arrived
const PROBE_RATE = 200; // send->ack probe: messages/s, over PROBE_SOCKETS sockets in rooms of their own
const PROBE_SOCKETS = 6;
const WATCHDOG_MINUTES = 12;

const GATEWAY_ENV = {
  RATE_LIMIT_PER_SEC: '1000000', RATE_LIMIT_BURST: '1000000', RATE_LIMIT_CLOSE_AFTER: '1000000',
  HOST: '127.0.0.1', LOG_LEVEL: 'warn', PORT: '0',
  // Exactly one Redis mode per run: clear whatever the caller's environment holds.
  REDIS_URL: '', REDIS_CLUSTER_NODES: '', REDIS_SENTINELS: '', REDIS_WAIT_REPLICAS: '0',
};

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (line) => process.stderr.write(`${line}\n`);

// ---------------------------------------------------------------- processes

const children = new Set();

function start(command, args, { env = {}, stdout = 'ignore' } = {}) {
  const child = spawn(command, args, { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', stdout, 'inherit'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** SIGKILL to a process and its children (the load generator's workers), by PID. */
function killTree(pid) {
  for (const p of [...childPids(pid), pid]) {
    try { process.kill(p, 'SIGKILL'); } catch { /* gone */ }
  }
}

/** Stops everything still running: load generators (with their workers) at once, the rest by stop(). */
async function stopEverything() {
  for (const child of children) if (child.loadgen && child.exitCode === null) killTree(child.pid);
  await stop([...children]);
}

/** SIGTERM by PID, SIGKILL after 10 s; resolves once every one has exited. */
async function stop(list) {
  await Promise.all(list.map((child) => new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', resolve);
    try { process.kill(child.pid, 'SIGTERM'); } catch { return resolve(); }
    setTimeout(() => { try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ } }, 10_000).unref();
  })));
}


// ---------------------------------------------------------------- Redis


const cpuMark = (pids) => ({ at: Date.now(), cpu: pids.map(cpuSeconds) });
/** Each process's CPU since the mark, in % of one core. */
const cpuSince = (pids, mark) => pids.map((pid, i) => Math.round(((cpuSeconds(pid) - mark.cpu[i]) / Math.max(0.001, (Date.now() - mark.at) / 1000)) * 100));


const waitUntil = (what, check, timeoutMs = 30_000) => waitFor(check, { what, timeoutMs, intervalMs: 100 });
const redisPorts = (count) => freeClusterPorts(count);
const cli = (port, ...args) => execFileSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args.map(String)], { timeout: 30_000, stdio: ['ignore', 'pipe', 'pipe'] }).toString();
const infoField = (text, name) => text.split(/\r?\n/).find((l) => l.startsWith(`${name}:`))?.slice(name.length + 1).trim();


async function startRedisNodes(ports, dir, cluster, redisArgs = []) {
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
async function clusterSettled(ports) {
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
async function startTopology({ kind, shards = 1, replicas = 0, redisArgs = [] }, dir) {
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

// ---------------------------------------------------------------- gateways

async function startGateways(count, redisEnv, extraEnv) {
  const prefix = `bench-cluster-${Date.now()}:`;
  const procs = [];
  const ports = [];
  const state = { stopping: false }; // their shutdown warnings ("broker down") are not worth showing
  for (let i = 0; i < count; i++) {
    const child = start(process.execPath, ['services/gateway/dist/main.js'], {
      env: { ...GATEWAY_ENV, ...redisEnv, ...extraEnv, NODE_ID: `gw-${i + 1}`, REDIS_PREFIX: prefix, LOG_LEVEL: 'info' },
      stdout: 'pipe',
    });
    procs.push(child);
    const { port, broker } = await new Promise((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`gateway exited with ${code} before listening`)));
      createInterface({ input: child.stdout }).on('line', (line) => {
        try {
          const entry = JSON.parse(line);
          if (entry.msg === 'listening') resolve(entry);
          else if (entry.level >= 40 && !state.stopping && !/DEVELOPMENT IDENTITIES/.test(entry.msg)) log(`   gw-${i + 1}: ${line.slice(0, 300)}`);
        } catch { /* not JSON */ }
      });
    });
    if (!String(broker).startsWith(`redis ${redisEnv.REDIS_URL ? 'standalone' : 'cluster'}`)) throw new Error(`gateway runs on "${broker}"`);
    ports.push(port);
  }
  for (const port of ports) {
    await waitUntil(`gateway ${port} /readyz`, async () => {
      const res = await fetch(`http://127.0.0.1:${port}/readyz`);
      if (!res.ok) throw new Error(await res.text());
      return true;
    }, 30_000);
  }
  return { procs, ports, state, urls: ports.map((p) => `ws://127.0.0.1:${p}/ws`), pids: procs.map((p) => p.pid) };
}

// ---------------------------------------------------------------- load

/**
 * Runs the load generator (a child process, stopped by PID if it overruns).
 * onSending: called once sending has begun; onStep(n): when --find-max step n has ended.
 */
async function load(tmp, gateways, args, label, { onSending, onStep } = {}) {
  const out = join(tmp, `${label}.json`);
  const argv = ['packages/loadgen/dist/cli.js', ...args, '--url', gateways.urls.join(','),
    ...gateways.pids.flatMap((pid) => ['--server-pid', String(pid)]), '--json', out];
  log(`  $ node packages/loadgen/dist/cli.js ${args.join(' ')} --url <3 gateways> --server-pid <3 gateways>`);
  const child = spawn(process.execPath, argv, { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
  child.loadgen = true;
  children.add(child);
  let started = false;
  createInterface({ input: child.stderr }).on('line', (line) => {
    const sent = /\| sent (\d+)\/s/.exec(line);
    if (!started && sent && Number(sent[1]) > 0) { started = true; onSending?.(child.pid); }
    const step = /^step (\d+):/.exec(line);
    if (step) onStep?.(Number(step[1]));
    if (/^(load:|step \d+:)/.test(line)) log(`    ${line}`);
  });
  const killer = setTimeout(() => { log(`    load generator overran: stopping it (${label})`); killTree(child.pid); }, 180_000);
  await new Promise((r) => child.once('exit', r));
  clearTimeout(killer);
  children.delete(child);
  if (!existsSync(out)) throw new Error(`load generator wrote no report (${label})`);
  return JSON.parse(readFileSync(out, 'utf8'));
}

const quantile = (sorted, q) => (sorted.length === 0 ? null : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]);
const r2 = (n) => (n === null ? null : Math.round(n * 100) / 100);

/**
 * Send->ack latency: PROBE_SOCKETS sockets, spread over the gateways, each alone in
 * a room of its own, sending PROBE_RATE messages/s together for `seconds`, each
 * timed from its send to its ack (which, with REDIS_WAIT_REPLICAS, comes after WAIT).
 */
async function ackProbe(urls, seconds) {
  const { default: WebSocket } = await import('ws');
  const run = Math.random().toString(36).slice(2, 8);
  const opened = [];
  const sockets = await Promise.all(Array.from({ length: PROBE_SOCKETS }, (_, i) => new Promise((resolve, reject) => {
    const room = `ackprobe-${run}-${i}`;
    const ws = new WebSocket(`${urls[i % urls.length]}?user=probe-${run}-${i}`, { perMessageDeflate: false });
    opened.push(ws);
    const pending = new Map();
    const state = { ws, room, pending, latencies: [], failed: 0, unanswered: 0 };
    setTimeout(() => reject(new Error('probe socket not joined within 10 s')), 10_000).unref();
    ws.on('error', reject);
    ws.on('message', (data) => {
      const raw = data.toString();
      if (raw.startsWith('{"type":"message"')) return;
      const frame = JSON.parse(raw);
      if (frame.type === 'welcome') ws.send(JSON.stringify({ type: 'join', room, ref: 'join' }));
      else if (frame.type === 'joined') resolve(state);
      else if (frame.ref !== undefined && pending.has(frame.ref)) {
        if (frame.type === 'ack') state.latencies.push(performance.now() - pending.get(frame.ref));
        else state.failed++;
        pending.delete(frame.ref);
      }
    });
  }))).catch((err) => {
    for (const ws of opened) ws.terminate();
    throw err;
  });
  const text = 'p'.repeat(100);
  const gapMs = (1000 * PROBE_SOCKETS) / PROBE_RATE;
  const until = performance.now() + seconds * 1000;
  let n = 0;
  for (let t = performance.now(); t < until; t += gapMs) {
    for (const s of sockets) {
      const ref = `s${++n}`;
      s.pending.set(ref, performance.now());
      s.ws.send(JSON.stringify({ type: 'send', room: s.room, text, ref }));
    }
    await sleep(Math.max(0, t + gapMs - performance.now()));
  }
  const deadline = performance.now() + 3000;
  while (sockets.some((s) => s.pending.size > 0) && performance.now() < deadline) await sleep(20);
  for (const s of sockets) s.ws.terminate();
  const all = sockets.flatMap((s) => s.latencies).sort((a, b) => a - b);
  return {
    sent: n, acked: all.length, failed: sockets.reduce((a, s) => a + s.failed, 0), unanswered: sockets.reduce((a, s) => a + s.pending.size, 0),
    p50: r2(quantile(all, 0.5)), p99: r2(quantile(all, 0.99)), max: r2(all.at(-1) ?? null),
  };
}

// ---------------------------------------------------------------- one configuration

const quick = process.argv.includes('--quick');
const FIXED_SECONDS = quick ? 3 : 6;
const STEP_SECONDS = quick ? 2 : 3;
const MAX_STEPS = Number(process.env.MAX_STEPS ?? (quick ? 4 : 8));

function commandsFor() {
  return {
    fixed: `npm run load -- fanout ${SHAPE.join(' ')} --rate ${FIXED_RATE} --duration ${FIXED_SECONDS} --url <3 gateway URLs> --server-pid <3 gateway PIDs>`,
    findMax: `npm run load -- fanout ${SHAPE.join(' ')} --rate ${FIND_MAX_START} --find-max --step-seconds ${STEP_SECONDS} --step-factor ${FIND_MAX_FACTOR} --max-steps ${MAX_STEPS} --max-p99 50 --url <3 gateway URLs>`,
  };
}

async function benchConfig(tmp, topology, config) {
  log(`\n== ${config.name}`);
  const gateways = await startGateways(3, topology.env, config.env ?? {});
  // Primaries first, then replicas.
  const redisPids = [...topology.nodes].sort((a, b) => Number(!topology.primaries.includes(a.port)) - Number(!topology.primaries.includes(b.port))).map((n) => n.child.pid);
  try {
    // Fixed rate, with the ack probe and Redis CPU sampled over the sending window.
    let probe;
    let redisCpu;
    let fixedCpu;
    const fixed = await load(tmp, gateways, ['fanout', ...SHAPE, '--rate', String(FIXED_RATE), '--duration', String(FIXED_SECONDS)], `${config.id}-fixed`, {
      onSending: (loadgenPid) => {
        const loadgenPids = [loadgenPid, ...childPids(loadgenPid)];
        const marks = [cpuMark(gateways.pids), cpuMark(redisPids), cpuMark(loadgenPids)];
        probe = ackProbe(gateways.urls, FIXED_SECONDS - 1).then((p) => {
          const [gw, redis, lg] = [gateways.pids, redisPids, loadgenPids].map((pids, i) => cpuSince(pids, marks[i]));
          redisCpu = redis;
          fixedCpu = { gateways: gw.reduce((a, b) => a + b, 0), redis, loadgen: lg.reduce((a, b) => a + b, 0) };
          return p;
        });
      },
    });
    const ack = probe ? await probe.catch((err) => { log(`   send→ack probe failed: ${err.message}`); return null; }) : null;
    const step = fixed.steps[0];
    let stepMark;
    const stepRedisCpu = [];
    log(`   fixed ${FIXED_RATE} msg/s: ${step.deliveriesPerSec} deliveries/s, delivery p50 ${step.latencyMs.p50} p99 ${step.latencyMs.p99} ms, `
      + `ack p50 ${ack?.p50} p99 ${ack?.p99} ms, lost ${step.lost}, failed ${step.failed}, redis cpu ${redisCpu?.join('/')}%`);
    const max = await load(tmp, gateways, ['fanout', ...SHAPE, '--rate', String(FIND_MAX_START), '--find-max', '--step-seconds', String(STEP_SECONDS),
      '--step-factor', String(FIND_MAX_FACTOR), '--max-steps', String(MAX_STEPS), '--max-p99', '50'], `${config.id}-max`, {
      // Redis CPU of each step: from the end of the previous one (or the first send) to its end, drain included.
      onSending: () => { stepMark = cpuMark(redisPids); },
      onStep: (n) => { stepRedisCpu[n - 1] = cpuSince(redisPids, stepMark); stepMark = cpuMark(redisPids); },
    });
    // Sustainable: the load generator's test (p99 under the bound, nothing lost, duplicated
    // or reordered) and the system kept up: at least KEEP_UP of the offered deliveries
    // arrived. Without the last test a saturated machine passes: the load generator's
    // senders fall behind their schedule (they share the 2 cores), send less than
    // offered, and time only what they did send.
    const steps = max.steps.map((s, i) => ({
      rate: Math.round(s.rate), offeredDeliveriesPerSec: Math.round(s.rate * MEMBERS), sentPerSec: Math.round(s.sent / s.seconds),
      deliveriesPerSec: s.deliveriesPerSec, p50: s.latencyMs.p50, p99: s.latencyMs.p99, lost: s.lost, duplicates: s.duplicates, reordered: s.reordered,
      failed: s.failed, loadgenCpuPercent: s.loadgenCpuPercent, gatewayCpuPercent: s.serverCpuPercent, redisCpuPercent: stepRedisCpu[i] ?? null, loadgenOk: s.ok,
      keptUp: s.deliveriesPerSec >= KEEP_UP * s.rate * MEMBERS,
    })).map((s) => ({ ...s, ok: s.loadgenOk && s.keptUp }));
    const best = steps.filter((s) => s.ok).sort((a, b) => b.deliveriesPerSec - a.deliveriesPerSec)[0] ?? null;
    const capped = steps.length > 0 && steps.at(-1).ok;
    const peak = Math.max(0, ...steps.filter((s) => s.loadgenOk).map((s) => s.deliveriesPerSec));
    log(`   highest sustainable: ${best?.deliveriesPerSec ?? 'none'}${capped ? '+' : ''} deliveries/s (p99 ${best?.p99} ms); peak delivered ${peak}/s`);
    return {
      id: config.id, name: config.name, topology: topology.description,
      fixed: { rate: FIXED_RATE, deliveriesPerSec: step.deliveriesPerSec, latencyMs: step.latencyMs, lost: step.lost, duplicates: step.duplicates,
        reordered: step.reordered, failed: step.failed, sent: step.sent, acked: step.acked, serverCpuUsPerDelivery: step.serverCpuUsPerDelivery,
        gatewayCpuPercent: step.serverCpuPercent, loadgenCpuPercent: step.loadgenCpuPercent, redisCpuPercent: redisCpu ?? null,
        cpuWhileSending: fixedCpu ?? null },
      ack,
      findMax: { best, capped, peak, loadgenBest: max.best?.deliveriesPerSec ?? null, steps },
    };
  } finally {
    gateways.state.stopping = true;
    await stop(gateways.procs);
  }
}

/** WAIT commands run so far by the primaries (INFO commandstats). */
function waitCalls(topology) {
  return topology.primaries.reduce((total, port) => total + Number(/cmdstat_wait:calls=(\d+)/.exec(cli(port, 'info', 'commandstats'))?.[1] ?? 0), 0);
}

/** Rooms (stream keys) each primary ended up with: how evenly the rooms spread over the shards. */
function roomsPerPrimary(topology) {
  return topology.primaries.map((port) => {
    const keys = cli(port, '--scan', '--pattern', '*:log').trim().split('\n').filter(Boolean);
    return keys.length;
  });
}

const TOPOLOGIES = [
  { id: 'standalone', kind: 'standalone', description: 'one redis-server', configs: [{ id: 'standalone', name: 'standalone Redis (reference)' }] },
  { id: 'cluster-1', kind: 'cluster', shards: 1, replicas: 0, description: 'Redis Cluster, 1 primary owning all slots (CLUSTER ADDSLOTSRANGE 0 16383), no replica',
    configs: [{ id: 'cluster-1', name: 'Redis Cluster, 1 shard' }] },
  { id: 'cluster-3', kind: 'cluster', shards: 3, replicas: 0, description: 'Redis Cluster, 3 primaries (redis-cli --cluster create), no replicas',
    configs: [{ id: 'cluster-3', name: 'Redis Cluster, 3 shards' }] },
  { id: 'cluster-3x2', kind: 'cluster', shards: 3, replicas: 1, description: 'Redis Cluster, 3 primaries + 3 replicas (redis-cli --cluster create --cluster-replicas 1)',
    configs: [
      { id: 'wait-0', name: '3 shards + 3 replicas, REDIS_WAIT_REPLICAS=0', env: { REDIS_WAIT_REPLICAS: '0' } },
      { id: 'wait-1', name: '3 shards + 3 replicas, REDIS_WAIT_REPLICAS=1', env: { REDIS_WAIT_REPLICAS: '1', REDIS_WAIT_TIMEOUT_MS: '1000' } },
    ] },
];

// ---------------------------------------------------------------- report

const fmt = (n, digits = 0) => (n === undefined || n === null ? 'n/a' : Number(n).toLocaleString('en-US', { maximumFractionDigits: digits }));

export const COMMAND_LINE = 'node bench/redis-cluster.mjs  # the Redis Cluster section (about 5 minutes, --quick about 2); npm run bench runs it only with --redis-cluster';

const HISTORY = 5;

/** The load generator's --find-max verdict: the highest step with p99 under the bound and nothing lost. */
const loadgenBest = (r) => r.findMax.steps.filter((s) => s.loadgenOk).sort((x, y) => y.deliveriesPerSec - x.deliveriesPerSec)[0];

/** One line per configuration of a run, for the run-to-run table. */
function runSummary(data) {
  return {
    at: data.finishedAt ?? data.date, loadBefore: data.loadBefore, params: data.params,
    rows: Object.fromEntries(data.results.map((r) => [r.id, {
      highest: loadgenBest(r)?.deliveriesPerSec ?? null, highestCapped: r.findMax.steps.at(-1)?.loadgenOk ?? false,
      keptUp: r.findMax.best?.deliveriesPerSec ?? null, keptUpCapped: r.findMax.capped,
      p99: r.fixed.latencyMs.p99, ackP50: r.ack?.p50 ?? null, ackP99: r.ack?.p99 ?? null,
      gatewayCpu: r.fixed.cpuWhileSending?.gateways ?? null,
    }])),
  };
}

/** The "## Redis Cluster" section, from bench/results/redis-cluster.json (null when it was never run). */
export function clusterSection(data = existsSync(RESULTS) ? JSON.parse(readFileSync(RESULTS, 'utf8')) : null) {
  if (!data) return null;
  const p = data.params;
  const by = Object.fromEntries(data.results.map((r) => [r.id, r]));
  const sum = (list) => list.reduce((a, b) => a + (b ?? 0), 0);
  const cpuList = (list) => (list ? list.map((n) => `${n}`).join(' + ') : 'n/a');
  const fixedDeliveries = fmt(p.fixedRate * p.members);
  // ¹ the load generator's --find-max verdict: p99 < 50 ms, nothing lost, duplicated or reordered.
  const lgBest = (r) => {
    const ok = loadgenBest(r);
    const capped = r.findMax.steps.length > 0 && r.findMax.steps.at(-1).loadgenOk;
    return ok
      ? `**${fmt(ok.deliveriesPerSec)}**${capped ? '+' : ''} | ${fmt(ok.p99, 1)} | ${fmt(ok.deliveriesPerSec)} of ${fmt(ok.offeredDeliveriesPerSec)} (${Math.round((ok.deliveriesPerSec / ok.offeredDeliveriesPerSec) * 100)}%)`
      : `< ${fmt(p.findMaxStart * p.members)} | n/a | n/a`;
  };
  // ² the same, and at least KEEP_UP of the offered deliveries delivered.
  const keptUp = (r) => (r.findMax.best ? `${fmt(r.findMax.best.deliveriesPerSec)}${r.findMax.capped ? '+' : ''}` : `< ${fmt(p.findMaxStart * p.members)}`);
  const cpu = (r) => {
    const c = r.fixed.cpuWhileSending;
    return c ? `${fmt(c.gateways)} / ${c.redis.join(' + ')} / ${fmt(c.loadgen)}` : 'n/a';
  };
  const integrity = (r) => {
    const all = [r.fixed, ...r.findMax.steps];
    return `${sum(all.map((s) => s.lost))} / ${sum(all.map((s) => s.duplicates))} / ${sum(all.map((s) => s.reordered))}`;
  };
  const failed = (r) => sum([r.fixed.failed, ...r.findMax.steps.map((s) => s.failed), r.ack?.failed, r.ack?.unanswered]);
  const row = (r) => `| ${r.name} | ${lgBest(r)} | ${keptUp(r)} | `
    + `${fmt(r.fixed.latencyMs.p50, 1)} / ${fmt(r.fixed.latencyMs.p99, 1)} | ${fmt(r.ack?.p50, 1)} / ${fmt(r.ack?.p99, 1)} | ${cpu(r)} | `
    + `${integrity(r)} | ${failed(r)} |`;
  const header = `| configuration | highest sustainable deliveries/s¹ | p99 there (ms) | delivered of offered there, per second | highest where ≥ ${Math.round(p.keepUp * 100)}% of the offered was delivered² | delivery p50 / p99 at ${fixedDeliveries}/s (ms) | send→ack p50 / p99 at ${fixedDeliveries}/s (ms) | CPU at ${fixedDeliveries}/s, % of one core: 3 gateways / each Redis node / load generator³ | lost / duplicated / reordered, every run | failed sends⁴ |
|---|---|---|---|---|---|---|---|---|---|`;
  const bestRatio = Math.round(100 * Math.max(...data.results.flatMap((r) => r.findMax.steps.map((s) => s.deliveriesPerSec / s.offeredDeliveriesPerSec))));
  // Comparisons on the mean of the runs in the run-to-run table (this run alone when it is the only one).
  const history = (data.history ?? []).filter((h) => JSON.stringify(h.params) === JSON.stringify(p)).slice(-HISTORY);
  const runs = history.length >= 2 ? history : [runSummary(data)];
  const mean = (id, key) => {
    const values = runs.map((h) => h.rows[id]?.[key]).filter((v) => typeof v === 'number');
    return values.length === runs.length ? values.reduce((x, y) => x + y, 0) / values.length : null;
  };
  const over = runs.length > 1 ? `mean of the ${runs.length} runs in *Run to run*, a "+" figure counted as it is` : 'this run';
  const compare = (a, b, label) => (a && b
    ? `${label} (${over}): highest sustainable¹ ${fmt(mean(b.id, 'highest'))} → ${fmt(mean(a.id, 'highest'))} (${pct(mean(a.id, 'highest'), mean(b.id, 'highest'))}), `
      + `with ≥ ${Math.round(p.keepUp * 100)}% delivered² ${fmt(mean(b.id, 'keptUp'))} → ${fmt(mean(a.id, 'keptUp'))} (${pct(mean(a.id, 'keptUp'), mean(b.id, 'keptUp'))}), `
      + `delivery p99 at ${fixedDeliveries}/s ${fmt(mean(b.id, 'p99'), 1)} → ${fmt(mean(a.id, 'p99'), 1)} ms, `
      + `send→ack p50 / p99 ${fmt(mean(b.id, 'ackP50'), 1)} / ${fmt(mean(b.id, 'ackP99'), 1)} → ${fmt(mean(a.id, 'ackP50'), 1)} / ${fmt(mean(a.id, 'ackP99'), 1)} ms.`
    : '');
  /** The gateways' CPU at the fixed rate, the steadiest figure from run to run. */
  const gatewayCpu = (rows) => {
    const measured = rows.filter((r) => r?.fixed.cpuWhileSending);
    if (measured.length < 2) return '';
    const cpuRuns = history.filter((h) => measured.every((r) => typeof h.rows[r.id]?.gatewayCpu === 'number'));
    const short = { standalone: 'standalone', 'cluster-1': '1 shard', 'cluster-3': '3 shards', 'wait-0': 'WAIT off', 'wait-1': 'WAIT on' };
    const perRun = cpuRuns.length >= 2
      ? ` (the ${cpuRuns.length} runs in *Run to run* that measured it: ${measured.map((r) => `${short[r.id]} ${cpuRuns.map((h) => h.rows[r.id].gatewayCpu).join(' / ')}%`).join(', ')})` : '';
    return `The 3 gateways' CPU at ${fixedDeliveries} deliveries/s, in % of one core, this run: `
      + `${measured.map((r) => `${short[r.id]} ${r.fixed.cpuWhileSending.gateways}%`).join(', ')}${perRun}.`;
  };
  /** Where the CPU went at the fixed rate: Redis's share against the rest. */
  const redisShare = (rows) => {
    const measured = rows.filter((r) => r?.fixed.cpuWhileSending);
    if (measured.length === 0) return '';
    const redisMax = Math.max(...measured.map((r) => r.fixed.cpuWhileSending.redis.reduce((a, b) => a + b, 0)));
    const restMin = Math.min(...measured.map((r) => r.fixed.cpuWhileSending.gateways + r.fixed.cpuWhileSending.loadgen));
    return `At ${fixedDeliveries} deliveries/s all Redis nodes together used at most ${redisMax}% of one core, the gateways and the load generator `
      + `at least ${restMin}%${redisMax * 3 < restMin ? ': on this machine the ceiling is the CPU of the gateways and the load generator, not Redis, whatever the topology' : ''}.`;
  };
  const sa = by.standalone;
  const s1 = by['cluster-1'];
  const s3 = by['cluster-3'];
  const w0 = by['wait-0'];
  const w1 = by['wait-1'];
  const pct = (a, b) => (a && b ? `${a >= b ? '+' : '−'}${Math.abs(Math.round((a / b - 1) * 100))}%` : 'n/a');
  const steps = (r) => r.findMax.steps.map((s) => `${fmt(s.offeredDeliveriesPerSec)}→${fmt(s.deliveriesPerSec)} (p99 ${fmt(s.p99, 1)}`
    + `${s.lost ? `, lost ${s.lost}` : ''}${s.ok ? '' : s.loadgenOk ? ', fell behind' : ', over'})`).join(', ');
  const runToRun = (d) => {
    if (history.length < 2) return '';
    const ids = d.results.map((r) => r.id);
    const names = Object.fromEntries(d.results.map((r) => [r.id, r.name.replace('3 shards + 3 replicas, ', '3+3, ')]));
    const cell = (c) => (c ? `${fmt(c.highest)}${c.highestCapped ? '+' : ''} / ${fmt(c.keptUp)}${c.keptUpCapped ? '+' : ''}; ${fmt(c.p99, 1)}; ${fmt(c.ackP50, 1)} / ${fmt(c.ackP99, 1)}` : 'n/a');
    return `### Run to run

The last ${history.length} runs of this script with these parameters on this machine (the newest last), to show how
much the figures above move from run to run. Each cell: highest sustainable¹ / with ≥ ${Math.round(p.keepUp * 100)}% delivered²;
delivery p99 at ${fixedDeliveries}/s (ms); send→ack p50 / p99 (ms).

| run (UTC), load average at its start | ${ids.map((id) => names[id]).join(' | ')} |
|---|${ids.map(() => '---|').join('')}
${history.map((h) => `| ${h.at.replace('T', ' ').slice(0, 16)}, ${h.loadBefore} | ${ids.map((id) => cell(h.rows[id])).join(' | ')} |`).join('\n')}

`;
  };
  const notes = `¹ The load generator's \`--find-max\` (from ${fmt(p.findMaxStart * p.members)} deliveries/s offered, ×${p.findMaxFactor} per ${p.stepSeconds}-second
step, at most ${p.maxSteps} steps, stopping at the first step with p99 ≥ 50 ms or anything lost): the highest step with
p99 < 50 ms and nothing lost, duplicated or reordered; "+": its last step still passed, the limit is higher.
On this machine that test alone is lenient: once the 2 cores are saturated the load generator's senders fall
behind their schedule, send less than offered and time only what they did send, so p99 can stay under 50 ms
while throughput stops growing. Hence the next column.
² The same test, and at least ${Math.round(p.keepUp * 100)}% of the offered deliveries delivered during the step (no step reaches
100%: the step's clock also counts the senders' start and stop; the best reach ${bestRatio}%). A step just under the line
moves this figure by a whole step (×${p.findMaxFactor}), so read it with the step list.
³ \`/proc\` user + system CPU of each process while sending (the probe's window), 200% being the whole machine:
the 3 gateways together, each redis-server (primaries first), the load generator's processes together.
The kernel's loopback work is charged to whichever of them is running.
⁴ \`error\` answers instead of \`ack\` (with \`REDIS_WAIT_REPLICAS\`: a WAIT that timed out) plus probe sends never answered.`;
  return `## Redis Cluster

Figures from one run of \`node bench/redis-cluster.mjs\`${data.quick ? ' --quick' : ''} on ${data.date} (it took ${fmt(data.seconds)} s), on
${data.machine}. Only **2 cores**, shared by the 3 gateways, every Redis node, the
load generator and whatever else ran on this shared machine at the time (1-minute
load average ${data.loadBefore} when the run began, ${data.loadAfter} at its end, its own processes included):
the shards of a cluster here are extra processes on the same two cores, not extra machines. So these tables show
the *cost* of Redis Cluster (more processes; each gateway holds a command
connection and a sharded-subscriber connection to every primary) and the limits
of 2 cores, **not** the gain of spreading shards over machines, which this setup
cannot show. Figures move from run to run on a shared machine ${history.length >= 2 ? '(see *Run to run* below)' : '(each run adds a line to a run-to-run table, up to the last 5)'}.

**Shape** (every row): 3 gateways; the load generator's fanout scenario with
${p.rooms} rooms of ${p.members} (${fmt(p.rooms * p.members)} clients, each room spread over the 3 gateways), one
sender per room, ${p.size}-byte messages. Many rooms, so that they spread over the
shards: the room streams each primary held at the end were ${s3 ? s3.rooms.join(' / ') : 'n/a'} (3 shards)${w0 ? ` and ${w0.rooms.join(' / ')} (3 shards + 3 replicas)` : ''},
over all runs on that topology (each run makes rooms of its own). Few members per room, so Redis
work per delivery is high: every message is one append script (XADD, trim,
\`SPUBLISH\`; \`PUBLISH\` on standalone Redis) and 3 pub/sub deliveries, one per gateway,
then ${p.members} WebSocket writes.

- *delivery latency*: the load generator's, from the send time written in each
  message to its arrival at each member, at a fixed ${fmt(p.fixedRate)} messages/s (${fixedDeliveries} deliveries/s) for ${p.fixedSeconds} s.
- *send→ack*: timed by the benchmark script itself (the load generator does not
  time acks): ${p.probeSockets} more sockets, each alone in a room of its own, sending ${p.probeRate} messages/s together
  during that fixed-rate run, each timed from \`send\` to its \`ack\`.

### Deliveries per second: standalone vs 1 shard vs 3 shards

${[sa, s1, s3].filter(Boolean).map((r) => `- ${r.name}: ${r.topology}.`).join('\n')}

${header}
${[sa, s1, s3].filter(Boolean).map(row).join('\n')}

${compare(s3, s1, '3 shards vs 1 shard')}
${compare(s1, sa, '1 shard vs standalone Redis')}
${gatewayCpu([sa, s1, s3])}
${redisShare([sa, s1, s3])}
Every \`--find-max\` step, offered → delivered per second:
${[sa, s1, s3].filter(Boolean).map((r) => `- ${r.name}: ${steps(r)}`).join('\n')}

### The cost of \`REDIS_WAIT_REPLICAS=1\`

${w0?.topology}; the same cluster for both rows, the gateways restarted with the
other setting (and \`REDIS_WAIT_TIMEOUT_MS=1000\`). With WAIT on, each append is
followed by \`WAIT 1 1000\` on the same connection, and the ack goes out once a
replica confirmed. The append script publishes the message before the WAIT, so
deliveries do not wait for the replica; but a WAIT holds the gateway's command
connection to that primary until it returns, so the commands queued behind it wait too.

${header}
${[w0, w1].filter(Boolean).map(row).join('\n')}

${compare(w1, w0, 'WAIT on vs off')}
${w0 && w1 && typeof w1.waitCalls === 'number' ? `The primaries ran ${fmt(w0.waitCalls)} WAIT commands during the WAIT-off row and ${fmt(w1.waitCalls)} during the WAIT-on row (\`INFO commandstats\` before and after each row; with WAIT on, one per append).` : ''}
${gatewayCpu([w0, w1])}
Every \`--find-max\` step, offered → delivered per second:
${[w0, w1].filter(Boolean).map((r) => `- ${r.name}: ${steps(r)}`).join('\n')}

${notes}

${runToRun(data)}### Measured, and not

Measured: throughput and latency of the whole system (3 gateways, Redis, load
generator) on one 2-core machine over loopback, per Redis topology; send→ack
latency with WAIT off and on; loss, duplicates and per-room order on every run.
Not measured: shards or replicas on machines of their own (the scaling a cluster
is for); network latency between gateway and Redis or between primary and replica
(WAIT adds one primary→replica round trip to every ack, here a loopback one);
persistence (\`--save "" --appendonly no\`); failover under load;
\`REDIS_WAIT_REPLICAS\` > 1; send→ack of the load generator's own messages (only the probe's);
the send→ack cost at rates other than ${fixedDeliveries} deliveries/s.

### Reproduce

\`\`\`sh
npm run build
node bench/redis-cluster.mjs     # about ${fmt(Math.ceil(data.seconds / 60))} minutes; --quick: a short pass; --no-write: print the JSON, leave BENCHMARKS.md alone
\`\`\`

It starts every process itself on free 127.0.0.1 ports (port + 10000 free too,
for the cluster bus), in a temporary directory, and stops each by PID at the end
(also on error or Ctrl-C). Each Redis node:

\`\`\`sh
redis-server --port P --bind 127.0.0.1 --cluster-enabled yes --cluster-config-file <tmp>/nodes-P.conf \\
  --cluster-announce-ip 127.0.0.1 --save "" --appendonly no --dir <tmp> --dbfilename dump-P.rdb --repl-diskless-sync-delay 0
\`\`\`

(standalone: without the \`--cluster-*\` flags). \`--cluster-announce-ip\` matters to the
1-shard cluster only: a node that never met another does not know its own address,
its \`CLUSTER SLOTS\` gives clients an empty host, and the gateways never get ready.
The clusters:

\`\`\`sh
redis-cli -p P cluster addslotsrange 0 16383            # 1 shard; then wait for cluster_state:ok
redis-cli --cluster create 127.0.0.1:P1 127.0.0.1:P2 127.0.0.1:P3 --cluster-replicas 0 --cluster-yes   # 3 shards
redis-cli --cluster create 127.0.0.1:P1 ... 127.0.0.1:P6 --cluster-replicas 1 --cluster-yes            # 3 shards + 3 replicas
\`\`\`

(the script waits until every node says \`cluster_state:ok\`, knows every other node, and every replica has synced), then per row 3 gateways and the load:

\`\`\`sh
REDIS_URL= REDIS_CLUSTER_NODES=127.0.0.1:P1,127.0.0.1:P2,... REDIS_WAIT_REPLICAS=0|1 REDIS_WAIT_TIMEOUT_MS=1000 \\
  RATE_LIMIT_PER_SEC=1000000 RATE_LIMIT_BURST=1000000 HOST=127.0.0.1 PORT=0 node services/gateway/dist/main.js   # ×3
${data.commands.fixed}   # + the send→ack probe
${data.commands.findMax}
\`\`\`

Raw JSON: \`bench/results/redis-cluster.json\`.
`;
}

/** Replaces the section headed `heading` (else puts it before "## Commands"), and its line in the Commands block. */
export function spliceSection(text, section, heading, commandLine) {
  const startAt = text.indexOf(`\n${heading}\n`);
  if (startAt >= 0) {
    const next = text.indexOf('\n## ', startAt + 1);
    text = text.slice(0, startAt + 1) + section + (next >= 0 ? `\n${text.slice(next + 1)}` : '');
  } else {
    const commands = text.indexOf('\n## Commands\n');
    text = commands >= 0 ? `${text.slice(0, commands + 1)}${section}\n${text.slice(commands + 1)}` : `${text.trimEnd()}\n\n${section}`;
  }
  const script = commandLine.split('  #')[0];
  const line = new RegExp(`\\n${script.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} {2}#[^\\n]*`);
  if (line.test(text)) text = text.replace(line, `\n${commandLine}`);
  else text = text.replace(/(\nnpm run bench {2,}[^\n]*\n)/, `$1${commandLine}\n`);
  return text;
}

function machine() {
  const redis = execFileSync('redis-server', ['--version']).toString().split(' ').find((w) => w.startsWith('v='))?.slice(2);
  return `${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node ${process.version}, Redis ${redis}`;
}

// ---------------------------------------------------------------- main

/**
 * Runs every configuration of every topology (each topology started fresh, then
 * stopped) and returns one result per configuration, with the run's metadata.
 * Stops everything it started when done, on error, on a signal and at the watchdog.
 */
export async function runTopologies(topologies, watchdogMinutes = WATCHDOG_MINUTES) {
  const began = Date.now();
  const loadBefore = loadavg()[0].toFixed(1);
  const tmp = mkdtempSync(join(tmpdir(), 'bench-redis-'));
  const results = [];
  const onSignal = async () => { await stopEverything(); rmSync(tmp, { recursive: true, force: true }); process.exit(130); };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // Whatever happens, the run ends.
  setTimeout(async () => { log(`redis bench: over ${watchdogMinutes} minutes, stopping`); await stopEverything(); process.exit(1); },
    watchdogMinutes * 60_000).unref();
  try {
    for (const topology of topologies) {
      const dir = join(tmp, topology.id);
      mkdirSync(dir);
      log(`\n### ${topology.description}`);
      const running = await startTopology(topology, dir);
      running.description = topology.description;
      try {
        for (const config of topology.configs) {
          const waitBefore = waitCalls(running);
          const result = await benchConfig(tmp, running, config);
          result.rooms = roomsPerPrimary(running);
          // Proof that REDIS_WAIT_REPLICAS took effect (or did not): WAIT commands the primaries ran during this row.
          result.waitCalls = waitCalls(running) - waitBefore;
          results.push(result);
        }
      } finally {
        await stop(running.nodes.map((n) => n.child));
      }
    }
  } finally {
    await stopEverything();
    rmSync(tmp, { recursive: true, force: true });
  }
  const seconds = Math.round((Date.now() - began) / 1000);
  log(`\nfinished in ${seconds} s`);
  return {
    date: new Date().toISOString().slice(0, 10), finishedAt: new Date().toISOString(), seconds, quick, machine: machine(),
    loadBefore, loadAfter: loadavg()[0].toFixed(1),
    params: { rooms: 40, members: MEMBERS, size: 100, fixedRate: FIXED_RATE, fixedSeconds: FIXED_SECONDS, findMaxStart: FIND_MAX_START,
      findMaxFactor: FIND_MAX_FACTOR, stepSeconds: STEP_SECONDS, maxSteps: MAX_STEPS, keepUp: KEEP_UP, probeRate: PROBE_RATE, probeSockets: PROBE_SOCKETS },
    commands: commandsFor(), results,
  };
}

async function main() {
  const only = process.argv.find((a) => a.startsWith('--only='))?.slice(7).split(',');
  const data = await runTopologies(TOPOLOGIES.filter((t) => !only || only.includes(t.id)));
  // Run-to-run spread: summaries of earlier runs (the section shows those made with the same parameters).
  const previous = existsSync(RESULTS) ? JSON.parse(readFileSync(RESULTS, 'utf8')) : null;
  data.history = [...(previous ? previous.history ?? [runSummary(previous)] : []), runSummary(data)].slice(-2 * HISTORY);
  report(data, RESULTS, clusterSection(data), '## Redis Cluster', COMMAND_LINE);
}

/** Writes the results and their section of BENCHMARKS.md; with --no-write, prints the JSON instead. */
export function report(data, resultsPath, section, heading, commandLine) {
  if (process.argv.includes('--no-write')) {
    process.stdout.write(`${JSON.stringify(data, null, 2)}\n`);
    return;
  }
  mkdirSync(join(root, 'bench/results'), { recursive: true });
  writeFileSync(resultsPath, `${JSON.stringify(data, null, 2)}\n`);
  const benchmarks = join(root, 'BENCHMARKS.md');
  writeFileSync(benchmarks, spliceSection(readFileSync(benchmarks, 'utf8'), section, heading, commandLine));
  log(`wrote ${resultsPath} and the ${heading.slice(3)} section of BENCHMARKS.md`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch(async (err) => {
    log(`redis-cluster bench: ${err.stack ?? err}`);
    await stopEverything();
    process.exit(1);
  });
}
