// The "## Redis Cluster" section of BENCHMARKS.md, from bench/results/redis-cluster.json:
// figures computed here, prose in bench/templates/redis-cluster-*.md.
import { existsSync, readFileSync } from 'node:fs';
import { fmt } from './lib/report.mjs';
import { fill } from './lib/template.mjs';

const RESULTS = new URL('./results/redis-cluster.json', import.meta.url);
export const HISTORY = 5;

/** The load generator's --find-max verdict: the highest step with p99 under the bound and nothing lost. */
const loadgenBest = (r) => r.findMax.steps.filter((s) => s.loadgenOk).sort((x, y) => y.deliveriesPerSec - x.deliveriesPerSec)[0];

/** One line per configuration of a run, for the run-to-run table. */
export function runSummary(data) {
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

/** What the section says, computed from one run's data (and the runs before it). */
function figures(data) {
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
  return { data, p, by, sa, s1, s3, w0, w1, fixedDeliveries, header, row, compare, gatewayCpu, redisShare, steps, runToRun, history, bestRatio };
}

/** The section, or null when the benchmark was never run. */
export function clusterSection(data = existsSync(RESULTS) ? JSON.parse(readFileSync(RESULTS, 'utf8')) : null) {
  if (!data) return null;
  const f = figures(data);
  const { p, s3, w0, history, fixedDeliveries } = f;
  const intro = fill('redis-cluster-intro', {
    quickFlag: data.quick ? ' --quick' : '', date: data.date, seconds: fmt(data.seconds), machine: data.machine,
    loadBefore: data.loadBefore, loadAfter: data.loadAfter,
    runToRunHint: history.length >= 2 ? '(see *Run to run* below)' : '(each run adds a line to a run-to-run table, up to the last 5)',
    rooms: p.rooms, members: p.members, clients: fmt(p.rooms * p.members), size: p.size,
    roomsThreeShards: s3 ? s3.rooms.join(' / ') : 'n/a', roomsWithReplicas: w0 ? ` and ${w0.rooms.join(' / ')} (3 shards + 3 replicas)` : '',
    fixedRate: fmt(p.fixedRate), fixedDeliveries, fixedSeconds: p.fixedSeconds, probeSockets: p.probeSockets, probeRate: p.probeRate,
  });
  const notes = fill('redis-cluster-notes', {
    findMaxStartDeliveries: fmt(p.findMaxStart * p.members), findMaxFactor: p.findMaxFactor, stepSeconds: p.stepSeconds,
    maxSteps: p.maxSteps, keepUpPercent: Math.round(p.keepUp * 100), bestRatio: f.bestRatio,
  });
  const tail = fill('redis-cluster-tail', {
    fixedDeliveries, minutes: fmt(Math.ceil(data.seconds / 60)), fixedCommand: data.commands.fixed, findMaxCommand: data.commands.findMax,
  });
  return `${intro}${throughput(f)}${waitCost(f)}${notes}\n\n${f.runToRun(data)}${tail}`;
}

/** Standalone Redis against a cluster of 1 and of 3 shards. */
function throughput({ sa, s1, s3, header, row, compare, gatewayCpu, redisShare, steps }) {
  return `### Deliveries per second: standalone vs 1 shard vs 3 shards

${[sa, s1, s3].filter(Boolean).map((r) => `- ${r.name}: ${r.topology}.`).join('\n')}

${header}
${[sa, s1, s3].filter(Boolean).map(row).join('\n')}

${compare(s3, s1, '3 shards vs 1 shard')}
${compare(s1, sa, '1 shard vs standalone Redis')}
${gatewayCpu([sa, s1, s3])}
${redisShare([sa, s1, s3])}
Every \`--find-max\` step, offered → delivered per second:
${[sa, s1, s3].filter(Boolean).map((r) => `- ${r.name}: ${steps(r)}`).join('\n')}

`;
}

/** The same cluster with REDIS_WAIT_REPLICAS off and on. */
function waitCost({ w0, w1, header, row, compare, gatewayCpu, steps }) {
  return `### The cost of \`REDIS_WAIT_REPLICAS=1\`

${w0?.topology}; ${fill('redis-cluster-wait', {})}${header}
${[w0, w1].filter(Boolean).map(row).join('\n')}

${compare(w1, w0, 'WAIT on vs off')}
${w0 && w1 && typeof w1.waitCalls === 'number' ? `The primaries ran ${fmt(w0.waitCalls)} WAIT commands during the WAIT-off row and ${fmt(w1.waitCalls)} during the WAIT-on row (\`INFO commandstats\` before and after each row; with WAIT on, one per append).` : ''}
${gatewayCpu([w0, w1])}
Every \`--find-max\` step, offered → delivered per second:
${[w0, w1].filter(Boolean).map((r) => `- ${r.name}: ${steps(r)}`).join('\n')}

`;
}
