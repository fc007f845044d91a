#!/usr/bin/env node
// What the archive costs and how fast it reads. Two parts, one run:
//   1. 3 gateways on one redis-server, with and without the archive (PostgreSQL 15 from
//      Debian's binaries + 1 archiver), the same fixed load near this machine's highest
//      sustainable rate: archive rows/s, archive lag p50/p99/max (sampled every 250 ms),
//      CPU of gateways, Redis, archiver and PostgreSQL, delivery p99.
//   2. One room with 1,000,000 archived messages: the time of a history page of 50 from
//      deep in it, straight from the archive and through a gateway's `history`.
// Writes bench/results/archive.json and the "## Archive" section of BENCHMARKS.md.
// Usage: npm run build && node bench/archive.mjs [--quick] [--no-write]  (about 4 minutes; --quick about 1)
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ArchiveStore } from '../packages/archive/dist/index.js';
import { TestClient, spawnService, startPostgres, startRedisServer } from '../packages/testkit/dist/index.js';
import { report } from './redis-cluster.mjs';
import { cpuSeconds } from '../packages/proc/dist/index.js';

const root = fileURLToPath(new URL('../', import.meta.url));
const RESULTS = join(root, 'bench/results/archive.json');
const COMMAND_LINE = 'node bench/archive.mjs  # the Archive section (about 4 minutes)';
const quick = process.argv.includes('--quick');
const SHAPE = ['--rooms', '40', '--members', '25', '--senders', '40', '--size', '100'];
const RATE = Number(process.env.ARCHIVE_BENCH_RATE ?? 2000); // messages/s: 50,000 deliveries/s
const SECONDS = quick ? 8 : 20;
const DEEP_ROWS = quick ? 100_000 : 1_000_000;
const log = (line) => process.stderr.write(`${line}\n`);
const GATEWAY_ENV = { RATE_LIMIT_PER_SEC: '1000000', RATE_LIMIT_BURST: '1000000', RATE_LIMIT_CLOSE_AFTER: '1000000', HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info' };

/** PostgreSQL's CPU: the postmaster and every backend it forked. */
const postgresPids = (postmaster) => [postmaster, ...execFileSync('ps', ['-o', 'pid=', '--ppid', String(postmaster)]).toString().trim().split(/\s+/).filter(Boolean).map(Number)];
const quantile = (sorted, q) => (sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]);
const round = (n, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits;
const metric = async (url, name) => Number(/^(\S+) (\S+)$/m.exec((await (await fetch(url)).text()).split('\n').find((l) => l.startsWith(`${name} `)) ?? '')?.[2] ?? 0);

async function loadRun(urls, pids) {
  const out = join(tmpdir(), `archive-load-${process.pid}.json`);
  const args = ['packages/loadgen/dist/cli.js', 'fanout', ...SHAPE, '--rate', String(RATE), '--duration', String(SECONDS), '--url', urls.join(','), '--json', out, '--quiet',
    ...pids.flatMap((p) => ['--server-pid', String(p)])];
  await new Promise((resolve) => spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] }).once('exit', resolve));
  const step = JSON.parse(readFileSync(out, 'utf8')).steps[0];
  return { deliveriesPerSec: step.deliveriesPerSec, p99: step.latencyMs.p99, lost: step.lost, duplicates: step.duplicates, sent: step.sent, acked: step.acked };
}

async function withAndWithout(archive) {
  const redis = await startRedisServer();
  const postgres = archive ? await startPostgres() : undefined;
  const databaseUrl = postgres ? await postgres.createDatabase('bench') : undefined;
  const env = { ...GATEWAY_ENV, REDIS_URL: redis.url, REDIS_PREFIX: `bench-archive-${Date.now()}:`, ...(databaseUrl && { DATABASE_URL: databaseUrl }) };
  const gateways = [];
  for (let i = 1; i <= 3; i++) gateways.push(await spawnService(join(root, 'services/gateway/dist/main.js'), { env: { ...env, NODE_ID: `gw-${i}` } }));
  const archiver = archive
    ? await spawnService(join(root, 'services/archiver/dist/main.js'), { env: { ...env, NODE_ID: 'archiver', PORT: '0', DATABASE_URL: databaseUrl } })
    : undefined;
  await new Promise((r) => setTimeout(r, 1000));
  const redisPid = Number(execFileSync('redis-cli', ['-p', String(redis.port), 'info', 'server']).toString().match(/process_id:(\d+)/)[1]);
  const postmaster = postgres?.pid();
  const groups = { gateways: gateways.map((g) => g.pid), redis: [redisPid], archiver: archiver ? [archiver.pid] : [], postgres: [] };
  const cpu0 = Object.fromEntries(Object.entries(groups).map(([k, pids]) => [k, pids.reduce((a, p) => a + cpuSeconds(p), 0)]));
  const pg0 = postmaster ? postgresPids(postmaster).reduce((a, p) => a + cpuSeconds(p), 0) : 0;
  const rows0 = archiver ? await metric(`http://127.0.0.1:${archiver.port}/metrics`, 'chat_archive_rows_total') : 0;
  const lags = [];
  const started = Date.now();
  const sampler = archiver && setInterval(async () => {
    try { lags.push(await metric(`http://127.0.0.1:${archiver.port}/metrics`, 'chat_archive_lag_seconds')); } catch { /* stopping */ }
  }, 250);
  const result = await loadRun(gateways.map((g) => `ws://127.0.0.1:${g.port}/ws`), groups.gateways);
  clearInterval(sampler || undefined);
  const seconds = (Date.now() - started) / 1000;
  const percent = (k) => round(((groups[k].reduce((a, p) => a + cpuSeconds(p), 0) - cpu0[k]) / seconds) * 100, 0);
  const cpu = { gateways: percent('gateways'), redis: percent('redis'), archiver: archiver ? percent('archiver') : 0,
    postgres: postmaster ? round(((postgresPids(postmaster).reduce((a, p) => a + cpuSeconds(p), 0) - pg0) / seconds) * 100, 0) : 0 };
  const rows = archiver ? (await metric(`http://127.0.0.1:${archiver.port}/metrics`, 'chat_archive_rows_total')) - rows0 : 0;
  if (process.env.DEBUG_LAGS) log(JSON.stringify(lags));
  lags.sort((a, b) => a - b);
  for (const g of gateways) await g.stop();
  await archiver?.stop();
  await redis.cleanup();
  await postgres?.cleanup();
  // Rows per second of sending: the archive keeps up, so that is the rate it writes at.
  const out = { archive, ...result, cpuPercent: cpu, archiveRows: rows, archiveRowsPerSec: round(rows / SECONDS, 0),
    lagSeconds: archive ? { p50: round(quantile(lags, 0.5), 2), p99: round(quantile(lags, 0.99), 2), max: round(lags.at(-1) ?? 0, 2) } : null };
  log(`  ${archive ? 'with' : 'without'} the archive: ${JSON.stringify(out)}`);
  return out;
}

async function deepRoom() {
  const postgres = await startPostgres();
  const databaseUrl = await postgres.createDatabase('deep');
  const redis = await startRedisServer();
  try {
    const store = await ArchiveStore.open({ url: databaseUrl, max: 4 });
    const start = Date.now() - 365 * 24 * 3600 * 1000; // a year of history
    const step = Math.floor((365 * 24 * 3600 * 1000) / DEEP_ROWS);
    const body = `","user":"alice","text":"${'x'.repeat(100)}","ts":1}`;
    const t0 = Date.now();
    for (let i = 0; i < DEEP_ROWS; i += 10_000) {
      const messages = Array.from({ length: 10_000 }, (_, j) => ({ id: `${start + (i + j) * step}-0`, body }));
      // Other rooms between them, as in a real database: 5 neighbours per batch.
      const others = Array.from({ length: 5 }, (_, k) => ({ room: `other-${k}`, messages: messages.slice(0, 2000), through: messages[1999].id, fromStart: true }));
      await store.write([{ room: 'deep', messages, through: messages.at(-1).id, fromStart: i === 0 }, ...others]);
    }
    const loadSeconds = round((Date.now() - t0) / 1000, 0);
    const idAt = (fraction) => `${start + Math.floor(DEEP_ROWS * fraction) * step}-0`;
    const time = async (fn, n = 200) => {
      const samples = [];
      for (let i = 0; i < n; i++) {
        const t = performance.now();
        await fn(i);
        samples.push(performance.now() - t);
      }
      samples.sort((a, b) => a - b);
      return { p50: round(quantile(samples, 0.5), 2), p99: round(quantile(samples, 0.99), 2) };
    };
    const direct = {};
    for (const depth of [0.01, 0.5, 0.99]) direct[`${Math.round((1 - depth) * 100)}% back`] = await time(() => store.before('deep', idAt(depth), 50));
    const gateway = await spawnService(join(root, 'services/gateway/dist/main.js'), { env: { ...GATEWAY_ENV, REDIS_URL: redis.url, DATABASE_URL: databaseUrl, NODE_ID: 'reader' } });
    await new Promise((r) => setTimeout(r, 1500));
    const client = await TestClient.connect(`ws://127.0.0.1:${gateway.port}/ws`, 'reader');
    await client.request({ type: 'join', room: 'deep' });
    const viaGateway = await time((i) => client.request({ type: 'history', room: 'deep', before: idAt(0.01 + (i % 97) / 100), limit: 50 }));
    await client.close();
    await gateway.stop();
    await store.close();
    return { rows: DEEP_ROWS, loadSeconds, direct, viaGateway };
  } finally {
    await redis.cleanup();
    await postgres.cleanup();
  }
}

const fmt = (n) => Number(n).toLocaleString('en-US');
function section(data) {
  const [off, on] = data.load;
  const cpuCell = (r) => `${r.cpuPercent.gateways} / ${r.cpuPercent.redis} / ${r.cpuPercent.archiver} / ${r.cpuPercent.postgres}`;
  const row = (r) => `| ${r.archive ? 'with the archive (1 archiver)' : 'without'} | ${fmt(r.deliveriesPerSec)} | ${r.p99} | ${r.archive ? fmt(r.archiveRowsPerSec) : '-'} | `
    + `${r.lagSeconds ? `${r.lagSeconds.p50} / ${r.lagSeconds.p99} / ${r.lagSeconds.max}` : '-'} | ${cpuCell(r)} | ${r.lost} / ${r.duplicates} |`;
  const deep = data.deep;
  return `## Archive

One run of \`node bench/archive.mjs\` on ${data.date}${data.quick ? ' (--quick)' : ''}. Machine: ${data.machine}, shared by everything.

**What it costs.** 3 gateways on one redis-server, 40 rooms of 25, ${fmt(RATE)} messages/s offered (${fmt(RATE * 25)} deliveries/s, near the
highest sustainable rate of the Redis bench on this machine) for ${SECONDS} s, without and with the archive (PostgreSQL 15,
one archiver, default settings). CPU in % of one core.

| | delivered/s | delivery p99 (ms) | archive rows/s | archive lag p50 / p99 / max (s) | CPU: gateways / Redis / archiver / PostgreSQL | lost / duplicated |
|---|---|---|---|---|---|---|
${row(off)}
${row(on)}

So archiving every message (${fmt(on.archiveRows)} rows of ${fmt(on.acked)} acknowledged) costs ${on.cpuPercent.archiver + on.cpuPercent.postgres}% of a core in the archiver and
PostgreSQL, ${on.cpuPercent.redis - off.cpuPercent.redis} points of Redis (the append script's set add, the archiver's reads and leases) and
${Math.max(0, on.cpuPercent.gateways - off.cpuPercent.gateways)} of the gateways; on two shared cores that competition also shows in the delivery p99.

**Reading deep history.** One room with ${fmt(deep.rows)} archived messages spread over a year (${Math.ceil(365 / 7)} weekly partitions, with
other rooms' rows between them), loaded in ${deep.loadSeconds} s through the archiver's batched write. A page of 50 (200 pages each):

| page | p50 (ms) | p99 (ms) |
|---|---|---|
${Object.entries(deep.direct).map(([depth, t]) => `| from the archive, ${depth} | ${t.p50} | ${t.p99} |`).join('\n')}
| through a gateway's \`history\` (WebSocket round trip, Redis miss, archive), anywhere | ${deep.viaGateway.p50} | ${deep.viaGateway.p99} |

Raw JSON: \`bench/results/archive.json\`.
`;
}

const machine = () => {
  const redis = execFileSync('redis-server', ['--version']).toString().split(' ').find((w) => w.startsWith('v='))?.slice(2);
  return `${(execFileSync('nproc').toString().trim())} cores, Node ${process.version}, Redis ${redis}, PostgreSQL 15`;
};

log('== the same load without and with the archive');
const load = [await withAndWithout(false), await withAndWithout(true)];
log('== a room with a million archived messages');
const deep = await deepRoom();
const data = { date: new Date().toISOString().slice(0, 10), quick, machine: machine(), rate: RATE, seconds: SECONDS, load, deep };
report(data, RESULTS, section(data), '## Archive', COMMAND_LINE);
process.exit(0);
