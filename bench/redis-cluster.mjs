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
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { childPids } from '../packages/proc/dist/index.js';
import { startGateways } from './lib/gateways.mjs';
import { KEEP_UP, MEMBERS, FIXED_RATE, FIND_MAX_START, FIND_MAX_FACTOR, SHAPE, WATCHDOG_MINUTES } from './lib/shape.mjs';
import { PROBE_RATE, PROBE_SOCKETS, ackProbe, cpuMark, cpuSince, load } from './lib/load.mjs';
import { log, stop, stopEverything } from './lib/processes.mjs';
import { cli, roomsPerPrimary, startTopology, waitCalls } from './lib/redis-nodes.mjs';
import { machine, report } from './lib/report.mjs';
import { clusterSection, HISTORY, runSummary } from './redis-cluster-section.mjs';

export { clusterSection } from './redis-cluster-section.mjs';
export { report } from './lib/report.mjs';
export { SHAPE } from './lib/shape.mjs';
export const COMMAND_LINE = 'node bench/redis-cluster.mjs  # the Redis Cluster section (about 5 minutes, --quick about 2); npm run bench runs it only with --redis-cluster';
const RESULTS = join(new URL('../', import.meta.url).pathname, 'bench/results/redis-cluster.json');

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

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch(async (err) => {
    log(`redis-cluster bench: ${err.stack ?? err}`);
    await stopEverything();
    process.exit(1);
  });
}
