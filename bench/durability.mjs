#!/usr/bin/env node
// What durability costs: 3 gateways on one redis-server kept in memory only, with an
// append-only file fsynced every second, and fsynced before every reply. Same shape and
// steps as bench/redis-cluster.mjs (whose runner it uses): a fixed-rate step with the
// send->ack probe, then a --find-max search. Writes bench/results/durability.json and
// the "## Durability" section of BENCHMARKS.md.
// Usage: npm run build && node bench/durability.mjs [--quick] [--no-write]  (about 3 minutes)
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { report, runTopologies } from './redis-cluster.mjs';

const root = fileURLToPath(new URL('../', import.meta.url));
const RESULTS = join(root, 'bench/results/durability.json');
export const COMMAND_LINE = 'node bench/durability.mjs  # the Durability section (about 3 minutes); npm run bench runs it only with --durability';

const standalone = (id, name, redisArgs) => ({ id, kind: 'standalone', description: `one redis-server, ${name}`, redisArgs, configs: [{ id, name }] });
const TOPOLOGIES = [
  standalone('memory', 'memory only (--appendonly no)', []),
  standalone('aof-everysec', 'AOF, appendfsync everysec', ['--appendonly', 'yes', '--appendfsync', 'everysec']),
  standalone('aof-always', 'AOF, appendfsync always', ['--appendonly', 'yes', '--appendfsync', 'always']),
];

const fmt = (n, digits = 0) => (n === undefined || n === null ? 'n/a' : Number(n).toLocaleString('en-US', { maximumFractionDigits: digits }));

/** Where the append-only files were written: fsync costs what this filesystem and device make it cost. */
function disk() {
  try {
    const [, line] = execFileSync('df', ['-T', tmpdir()]).toString().trim().split('\n');
    const [device, type] = line.split(/\s+/);
    return `${type} on ${device} (${tmpdir()})`;
  } catch { return tmpdir(); }
}

function row(r) {
  const best = r.findMax.best;
  const redisCpu = r.fixed.cpuWhileSending?.redis?.[0];
  return `| ${r.name} | ${best ? `**${fmt(best.deliveriesPerSec)}**${r.findMax.capped ? '+' : ''}` : 'none'} | ${fmt(best?.p99, 1)} | `
    + `${fmt(r.fixed.latencyMs.p50, 1)} / ${fmt(r.fixed.latencyMs.p99, 1)} | ${fmt(r.ack?.p50, 1)} / ${fmt(r.ack?.p99, 1)} | `
    + `${r.fixed.lost} / ${r.fixed.duplicates} / ${r.fixed.reordered} | ${(r.ack?.failed ?? 0) + (r.ack?.unanswered ?? 0)} | `
    + `${redisCpu === undefined ? 'n/a' : `${redisCpu}%`} |`;
}

/** The "## Durability" section, from bench/results/durability.json (null when it was never run). */
export function durabilitySection(data = existsSync(RESULTS) ? JSON.parse(readFileSync(RESULTS, 'utf8')) : null) {
  if (!data) return null;
  const p = data.params;
  const fixedDeliveries = fmt(p.fixedRate * p.members);
  return `## Durability

What keeping Redis's data costs, in one run of \`node bench/durability.mjs\` on ${data.date}${data.quick ? ' (--quick)' : ''}
(${data.seconds} s): 3 gateways on one redis-server, ${p.rooms} rooms of ${p.members}, one sender per room,
${p.size}-byte messages; the fixed step offers ${fixedDeliveries} deliveries/s while ${p.probeSockets} probe
sockets time ${p.probeRate} sends/s from send to ack; the search then raises the rate ×${p.findMaxFactor} per
${p.stepSeconds} s step. Append-only files on ${data.disk}. Machine: ${data.machine}, shared by everything.
What each setting keeps through a crash: [docs/redis-topologies.md#durability](docs/redis-topologies.md#durability).
Redis writes (and with \`always\` fsyncs) once per event-loop turn for every command of that turn,
so under load one fsync covers many messages: \`always\` costs latency more than throughput. What an
fsync costs is the device's: a virtual disk with a write cache (as here) is cheap, a bare disk without
one can be milliseconds.

| Redis | highest sustainable deliveries/s (p99 < 50 ms, nothing lost, ≥ ${Math.round(p.keepUp * 100)}% delivered) | p99 there (ms) | delivery p50 / p99 at ${fixedDeliveries}/s (ms) | send→ack p50 / p99 at ${fixedDeliveries}/s (ms) | lost / duplicated / reordered | failed probe sends | Redis CPU at ${fixedDeliveries}/s |
|---|---|---|---|---|---|---|---|
${data.results.map(row).join('\n')}

\`\`\`sh
node bench/durability.mjs [--quick]   # this section
${data.commands.fixed}   # + the send→ack probe
${data.commands.findMax}
\`\`\`

Raw JSON: \`bench/results/durability.json\`.
`;
}

async function main() {
  const data = { ...(await runTopologies(TOPOLOGIES, 8)), disk: disk() };
  report(data, RESULTS, durabilitySection(data), '## Durability', COMMAND_LINE);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((err) => {
    process.stderr.write(`durability bench: ${err.stack ?? err}\n`);
    process.exit(1);
  });
}
