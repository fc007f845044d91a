#!/usr/bin/env node
// WebSocket vs the fallback transport (Server-Sent Events down, HTTP POST up), on the same
// shape and the same load generator. For each transport, a fresh redis-server (memory only,
// free port) and --gateways gateways (default 3, each with an inspector port), then:
//   idle   --idle connections (default 2,000) opened and held by `npm run load -- connect`;
//          the gateways' RSS after a full GC (inspector HeapProfiler.collectGarbage) before and
//          after, divided by the connections: idle bytes per connection
//   load   `npm run load -- fanout` on the standard shape (bench/lib/shape.mjs: 40 rooms of 25,
//          one sender per room, 100-byte messages) at --rate msg/s (default 400: 10,000
//          deliveries/s) for --seconds (default 15): gateway + Redis CPU per delivery (gateway
//          CPU from /proc, Redis from INFO, over the sending window and its drain), delivery p99,
//          and send->ack p99 (from a send leaving its client to its ack; for SSE that includes
//          the POST, which goes to the stream's own gateway)
// --rounds (default 2) repeats both, the order flipped each round (ws, sse, then sse, ws), and
// the targets are judged on the mean over rounds:
//   SSE CPU per delivery <= 1.5x WebSocket's; SSE delivery p99 <= WebSocket's + 10 ms;
//   SSE send->ack p99 <= WebSocket's + 15 ms; SSE idle memory per session <= 2x a WebSocket's.
// Prints a table, then the JSON; writes bench/results/transports.json (not with --no-write).
// Usage: npm run build && node bench/transports.mjs [--quick] [--rounds N] [--seconds S] [--rate N]
//          [--idle N] [--gateways N] [--workers W] [--transports ws,sse,sse-relay] [--no-write]
// sse-relay: SSE again, each POST sent to another gateway than its stream's (npm run load -- --sse-relay),
// so all are relayed; its send->ack p99 is judged against the target too.
// About 3.5 minutes on 2 cores (--quick: 1 round, 5 s, 500 idle: under a minute). Every process
// it starts is stopped by PID at the end, on error and on Ctrl-C; all traffic stays on 127.0.0.1.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { freePort } from '../packages/proc/dist/index.js';
import { startGateways } from './lib/gateways.mjs';
import { benchScratch, children, killTree, log, root, stop, stopEverything } from './lib/processes.mjs';
import { startTopology } from './lib/redis-nodes.mjs';
import { fmt, machine } from './lib/report.mjs';
import { FIXED_RATE, MEMBERS, SHAPE } from './lib/shape.mjs';

export const COMMAND_LINE = 'node bench/transports.mjs  # WebSocket vs SSE + POST: CPU per delivery, delivery and send->ack p99 at 10,000 deliveries/s, idle memory per connection (about 2.5 minutes)';
const RESULTS = join(root, 'bench/results/transports.json');

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean' }, rounds: { type: 'string' }, seconds: { type: 'string' }, rate: { type: 'string' }, idle: { type: 'string' },
    gateways: { type: 'string' }, workers: { type: 'string' }, transports: { type: 'string' }, 'no-write': { type: 'boolean' }, help: { type: 'boolean' },
  },
});
if (args.help) {
  process.stdout.write(`${readFileSync(new URL(import.meta.url), 'utf8').split('\n').filter((l) => l.startsWith('//')).map((l) => l.slice(3)).join('\n')}\n`);
  process.exit(0);
}
const quick = args.quick ?? false;
const int = (v, fallback, min, max, name) => {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be an integer from ${min} to ${max}, got "${v}"`);
  return n;
};
const P = {
  rounds: int(args.rounds, quick ? 1 : 2, 1, 10, 'rounds'),
  seconds: int(args.seconds, quick ? 5 : 15, 1, 600, 'seconds'),
  rate: int(args.rate, FIXED_RATE, 1, 1_000_000, 'rate'),
  idle: int(args.idle, quick ? 500 : 2000, 1, 15_000, 'idle'),
  gateways: int(args.gateways, 3, 1, 8, 'gateways'),
  workers: int(args.workers, 2, 1, 16, 'workers'),
  transports: (args.transports ?? 'ws,sse,sse-relay').split(',').filter(Boolean),
  shape: SHAPE,
  members: MEMBERS,
};
const NAMES = { ws: 'WebSocket', sse: 'SSE + POST', 'sse-relay': 'SSE + POST relayed' };
for (const t of P.transports) if (!(t in NAMES)) throw new Error(`--transports: ws, sse and/or sse-relay, got "${t}"`);
/** sse-relay: SSE whose every POST goes to another gateway than its stream's (as most do behind a load balancer without stickiness). */
const transportFlags = (t) => (t === 'sse-relay' ? ['--transport', 'sse', '--sse-relay'] : ['--transport', t]);

const TARGETS = { cpuRatio: 1.5, deliveryP99PlusMs: 10, ackP99PlusMs: 15, memoryRatio: 2 };

// ---------------------------------------------------------------- processes

const PROGRESS = /^(load:|\[)/;

/** The load generator as a child process (its workers stopped by PID if it overruns); returns its JSON report. */
async function loadgen(tmp, argv, label, timeoutMs) {
  const out = join(tmp, `${label}.json`);
  const child = spawn(process.execPath, ['packages/loadgen/dist/cli.js', ...argv, '--json', out], { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
  child.loadgen = true;
  children.add(child);
  let last = '';
  createInterface({ input: child.stderr }).on('line', (line) => {
    if (line.startsWith('load:')) log(`    ${line}`);
    else if (PROGRESS.test(line)) last = line;
  });
  const ticker = setInterval(() => { if (last) log(`    ${last}`); last = ''; }, 5000);
  const killer = setTimeout(() => { log(`    load generator overran: stopping it (${label})`); killTree(child.pid); }, timeoutMs);
  const code = await new Promise((r) => child.once('exit', r));
  clearTimeout(killer);
  clearInterval(ticker);
  children.delete(child);
  if (!existsSync(out)) throw new Error(`load generator wrote no report (${label}, exit ${code})`);
  return JSON.parse(readFileSync(out, 'utf8'));
}

/** A fresh Redis and the gateways, each listening for the inspector; `run(system)`; then both stopped. */
async function withSystem(tmp, label, run) {
  const dir = mkdtempSync(join(tmp, `${label}-`));
  const redis = await startTopology({ kind: 'standalone' }, dir);
  let gateways;
  try {
    const inspectors = [];
    for (let i = 0; i < P.gateways; i++) inspectors.push(await freePort());
    gateways = await startGateways(P.gateways, redis.env, {}, (i) => ({ NODE_OPTIONS: `--inspect=127.0.0.1:${inspectors[i]}` }));
    return await run({ urls: gateways.urls, pids: gateways.pids, inspectors, redisUrl: redis.env.REDIS_URL });
  } finally {
    if (gateways) {
      gateways.state.stopping = true;
      await stop(gateways.procs);
    }
    await stop(redis.nodes.map((n) => n.child));
  }
}

// ---------------------------------------------------------------- one transport

async function measure(tmp, transport, round) {
  const label = `${transport}-${round}`;
  log(`\n== round ${round}: ${NAMES[transport]} (${P.gateways} gateways, Redis)`);
  return withSystem(tmp, label, async (system) => {
    const target = ['--url', system.urls.join(','), ...transportFlags(transport), '--workers', String(P.workers), '--quiet',
      ...system.pids.flatMap((p) => ['--server-pid', String(p)])];
    log(`  idle: ${fmt(P.idle)} connections, RSS after a full GC before and after`);
    const idle = await loadgen(tmp, ['connect', '--clients', String(P.idle), '--duration', '1', '--ramp', '2000', ...target,
      ...system.inspectors.flatMap((p) => ['--gc-inspector', String(p)])], `${label}-idle`, 120_000);
    log(`    ${fmt(idle.connected)} connected; ${fmt(idle.serverLiveMemory?.bytesPerConnection)} bytes per connection after a full GC`);
    await sleep(1000); // the idle clients' closes pass before the load starts
    log(`  load: fanout ${P.shape.join(' ')} --rate ${P.rate} for ${P.seconds} s`);
    const load = await loadgen(tmp, ['fanout', ...P.shape, '--rate', String(P.rate), '--duration', String(P.seconds), '--ramp', '2000', ...target,
      '--redis-url', system.redisUrl], `${label}-load`, (P.seconds + 120) * 1000);
    const s = load.steps[0];
    const figures = {
      transport, round,
      cpuUsPerDelivery: round2((s.serverCpuUsPerDelivery ?? 0) + (s.redis?.cpuUsPerDelivery ?? 0)),
      gatewayCpuUsPerDelivery: s.serverCpuUsPerDelivery, redisCpuUsPerDelivery: s.redis?.cpuUsPerDelivery,
      deliveryP99Ms: s.latencyMs.p99, deliveryP50Ms: s.latencyMs.p50, ackP99Ms: s.ackLatencyMs.p99, ackP50Ms: s.ackLatencyMs.p50,
      deliveriesPerSec: s.deliveriesPerSec, offeredDeliveriesPerSec: P.rate * P.members,
      sent: s.sent, acked: s.acked, failed: s.failed, lost: s.lost, duplicates: s.duplicates, reordered: s.reordered, errors: s.errors,
      gatewayCpuPercent: s.serverCpuPercent, redisCpuPercent: s.redis?.cpuPercent, loadgenCpuPercent: s.loadgenCpuPercent,
      idleConnections: idle.connected, idleBytesPerConnection: idle.serverLiveMemory?.bytesPerConnection ?? null,
      idleRssAfterGcBytes: idle.serverLiveMemory ? { before: idle.serverLiveMemory.beforeBytes, after: idle.serverLiveMemory.afterBytes } : null,
      connectP99Ms: idle.connectMs.p99,
    };
    log(`    ${fmt(s.deliveriesPerSec)} deliveries/s; CPU ${figures.cpuUsPerDelivery} µs per delivery (gateways ${s.serverCpuUsPerDelivery}, Redis ${s.redis?.cpuUsPerDelivery}); `
      + `delivery p99 ${s.latencyMs.p99} ms; send->ack p99 ${s.ackLatencyMs.p99} ms; lost ${s.lost}`);
    return figures;
  });
}

// ---------------------------------------------------------------- the figures

const FIELDS = ['cpuUsPerDelivery', 'gatewayCpuUsPerDelivery', 'redisCpuUsPerDelivery', 'deliveryP99Ms', 'deliveryP50Ms', 'ackP99Ms', 'ackP50Ms',
  'deliveriesPerSec', 'idleBytesPerConnection', 'loadgenCpuPercent', 'gatewayCpuPercent', 'redisCpuPercent'];

/** Per transport: the mean of each figure over the rounds, and the integrity sums. */
function summarize(runs) {
  const out = {};
  for (const t of P.transports) {
    const mine = runs.filter((r) => r.transport === t);
    const mean = {};
    for (const f of FIELDS) {
      const values = mine.map((r) => r[f]).filter((v) => typeof v === 'number');
      mean[f] = values.length ? round2(values.reduce((a, b) => a + b, 0) / values.length) : null;
    }
    for (const f of ['lost', 'duplicates', 'reordered', 'failed', 'errors']) mean[f] = mine.reduce((a, r) => a + (r[f] ?? 0), 0);
    out[t] = mean;
  }
  return out;
}

function judge(sum) {
  const ws = sum.ws;
  const sse = sum.sse;
  if (!ws || !sse) return [];
  const ratio = (a, b) => (a !== null && b ? round2(a / b) : null);
  const cpu = ratio(sse.cpuUsPerDelivery, ws.cpuUsPerDelivery);
  const mem = ratio(sse.idleBytesPerConnection, ws.idleBytesPerConnection);
  const dP99 = round2(sse.deliveryP99Ms - ws.deliveryP99Ms);
  const aP99 = round2(sse.ackP99Ms - ws.ackP99Ms);
  const relayed = sum['sse-relay'];
  const rP99 = relayed ? round2(relayed.ackP99Ms - ws.ackP99Ms) : null;
  return [
    ...(relayed ? [{ target: `send->ack p99 with every POST relayed <= WebSocket's + ${TARGETS.ackP99PlusMs} ms`, measured: `${relayed.ackP99Ms} vs ${ws.ackP99Ms} ms: ${rP99 >= 0 ? '+' : ''}${rP99} ms`, met: rP99 <= TARGETS.ackP99PlusMs }] : []),
    { target: `CPU per delivery (gateways + Redis) <= ${TARGETS.cpuRatio}x WebSocket's`, measured: `${sse.cpuUsPerDelivery} vs ${ws.cpuUsPerDelivery} µs: ${cpu}x`, met: cpu !== null && cpu <= TARGETS.cpuRatio },
    { target: `delivery p99 <= WebSocket's + ${TARGETS.deliveryP99PlusMs} ms at ${fmt(P.rate * P.members)} deliveries/s`, measured: `${sse.deliveryP99Ms} vs ${ws.deliveryP99Ms} ms: ${dP99 >= 0 ? '+' : ''}${dP99} ms`, met: dP99 <= TARGETS.deliveryP99PlusMs },
    { target: `send->ack p99 <= WebSocket's + ${TARGETS.ackP99PlusMs} ms`, measured: `${sse.ackP99Ms} vs ${ws.ackP99Ms} ms: ${aP99 >= 0 ? '+' : ''}${aP99} ms`, met: aP99 <= TARGETS.ackP99PlusMs },
    { target: `idle memory per connection <= ${TARGETS.memoryRatio}x a WebSocket's (RSS after a full GC, ${fmt(P.idle)} each)`, measured: `${fmt(sse.idleBytesPerConnection)} vs ${fmt(ws.idleBytesPerConnection)} bytes: ${mem}x`, met: mem !== null && mem <= TARGETS.memoryRatio },
  ];
}

function table(data) {
  const name = NAMES;
  const rows = [
    ['', ...P.transports.map((t) => name[t])],
    ['CPU per delivery, gateways + Redis (µs)', ...P.transports.map((t) => `${data.summary[t].cpuUsPerDelivery} (${data.summary[t].gatewayCpuUsPerDelivery} + ${data.summary[t].redisCpuUsPerDelivery})`)],
    [`delivery p50 / p99 (ms)`, ...P.transports.map((t) => `${data.summary[t].deliveryP50Ms} / ${data.summary[t].deliveryP99Ms}`)],
    ['send->ack p50 / p99 (ms)', ...P.transports.map((t) => `${data.summary[t].ackP50Ms} / ${data.summary[t].ackP99Ms}`)],
    [`idle bytes per connection (${fmt(P.idle)}, after GC)`, ...P.transports.map((t) => fmt(data.summary[t].idleBytesPerConnection))],
    [`deliveries/s (offered ${fmt(P.rate * P.members)})`, ...P.transports.map((t) => fmt(data.summary[t].deliveriesPerSec))],
    ['CPU %: gateways / Redis / load generator', ...P.transports.map((t) => `${data.summary[t].gatewayCpuPercent} / ${data.summary[t].redisCpuPercent} / ${data.summary[t].loadgenCpuPercent}`)],
    ['lost / duplicated / reordered / failed', ...P.transports.map((t) => ['lost', 'duplicates', 'reordered', 'failed'].map((f) => data.summary[t][f]).join(' / '))],
  ];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  const line = (r) => r.map((c, i) => String(c).padEnd(widths[i])).join('  ').trimEnd();
  const out = [`WebSocket vs SSE + POST: ${P.gateways} gateways + Redis, fanout ${P.shape.join(' ')} at ${P.rate} msg/s for ${P.seconds} s, `
    + `${P.rounds} round(s) (means), ${data.machine}`, '', line(rows[0]), ...rows.slice(1).map(line)];
  if (P.rounds > 1) {
    out.push('', 'each round: transport, CPU µs/delivery, delivery p99 ms, send->ack p99 ms, idle bytes/connection, deliveries/s');
    for (const r of data.runs) out.push(`  ${r.round} ${r.transport.padEnd(3)}  ${r.cpuUsPerDelivery}  ${r.deliveryP99Ms}  ${r.ackP99Ms}  ${fmt(r.idleBytesPerConnection)}  ${fmt(r.deliveriesPerSec)}`);
  }
  if (data.targets.length) {
    out.push('', 'targets (SSE against WebSocket):');
    for (const t of data.targets) out.push(`  ${t.met ? 'met   ' : 'MISSED'}  ${t.target}: ${t.measured}`);
  }
  const short = data.runs.filter((r) => r.deliveriesPerSec < 0.9 * r.offeredDeliveriesPerSec);
  if (short.length) out.push('', `note: ${short.map((r) => `round ${r.round} ${r.transport}`).join(', ')} delivered under 90% of the offered rate (a busy machine, or the load generator fell behind)`);
  return out.join('\n');
}

// ---------------------------------------------------------------- main

async function main() {
  const began = Date.now();
  const loadBefore = loadavg()[0].toFixed(1);
  const tmp = benchScratch('transports', 15);
  const runs = [];
  try {
    for (let round = 1; round <= P.rounds; round++) {
      const order = round % 2 === 1 ? P.transports : [...P.transports].reverse();
      for (const transport of order) runs.push(await measure(tmp, transport, round));
    }
  } finally {
    await stopEverything();
    rmSync(tmp, { recursive: true, force: true });
  }
  const summary = summarize(runs);
  const data = {
    date: new Date().toISOString(), quick, seconds: Math.round((Date.now() - began) / 1000), machine: machine(), loadBefore, loadAfter: loadavg()[0].toFixed(1),
    params: P, targets: [], summary, runs,
  };
  data.targets = judge(summary);
  data.command = `node bench/transports.mjs${process.argv.slice(2).length ? ` ${process.argv.slice(2).join(' ')}` : ''}`;
  process.stdout.write(`${table(data)}\n\n${JSON.stringify(data, null, 2)}\n`);
  if (!args['no-write']) {
    mkdirSync(join(root, 'bench/results'), { recursive: true });
    writeFileSync(RESULTS, `${JSON.stringify(data, null, 2)}\n`);
    log(`\nwrote ${RESULTS} (${data.seconds} s)`);
  } else log(`\nfinished in ${data.seconds} s`);
}

const round2 = (n) => Math.round(n * 100) / 100;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

main().catch(async (err) => {
  log(`transports bench: ${err.stack ?? err}`);
  await stopEverything();
  process.exit(1);
});
