#!/usr/bin/env node
// End to end on one gateway and its own Redis: gateway and Redis CPU per delivery
// from the load generator's fanout scenario, on two shapes (many rooms of 2, few
// rooms of 100). With --against DIR (another checkout of this repository, built),
// alternates the two builds' gateways round by round; the load generator is this one's.
// Usage: node bench/fanout.mjs [--against /path/to/other/checkout] [--rounds 2] [--duration 8]
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { freePort, startRedisServer } from '../packages/proc/dist/index.js';
import { startGateways } from './lib/gateways.mjs';
import { root, start, stop } from './lib/processes.mjs';
import { median } from './lib/report.mjs';

const { values } = parseArgs({ options: {
  against: { type: 'string' }, rounds: { type: 'string', default: '2' }, duration: { type: 'string', default: '8' },
} });
const builds = [['this build', root], ...(values.against ? [['--against', values.against.endsWith('/') ? values.against : `${values.against}/`]] : [])];
const shapes = [
  { name: '200 rooms × 2, 3,000 msg/s', args: ['--rooms', '200', '--members', '2', '--senders', '200', '--rate', '3000'] },
  { name: '10 rooms × 100, 30,000 deliveries/s', args: ['--rooms', '10', '--members', '100', '--senders', '10', '--rate', '300'] },
];

function loadgen(args) {
  const child = start(process.execPath, ['packages/loadgen/dist/cli.js', ...args]);
  child.loadgen = true;
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`load generator exited with ${code}`))));
  });
}

async function measure(dir, shape, redisUrl) {
  const gateways = await startGateways(1, { REDIS_URL: redisUrl }, {}, () => ({}), dir);
  try {
    const out = join(mkdtempSync(join(tmpdir(), 'fanout-')), 'report.json');
    await loadgen(['fanout', ...shape.args, '--size', '100', '--duration', values.duration, '--quiet', '--workers', '2',
      '--url', gateways.urls[0], '--server-pid', String(gateways.pids[0]), '--redis-url', redisUrl, '--json', out]);
    const [step] = JSON.parse(readFileSync(out, 'utf8')).steps;
    if (step.lost + step.duplicates + step.reordered > 0) throw new Error(`${shape.name}: messages lost, duplicated or reordered`);
    return { gateway: step.serverCpuUsPerDelivery, redis: step.redis.cpuUsPerDelivery };
  } finally {
    gateways.state.stopping = true;
    await stop(gateways.procs);
  }
}

const redis = await startRedisServer(await freePort(), mkdtempSync(join(tmpdir(), 'fanout-redis-')));
const results = new Map(shapes.flatMap((s) => builds.map(([label]) => [`${s.name}|${label}`, []])));
try {
  for (let r = 0; r < Number(values.rounds); r++) {
    for (const shape of shapes) {
      for (const [label, dir] of builds) results.get(`${shape.name}|${label}`).push(await measure(dir, shape, redis.url));
    }
  }
} finally {
  await redis.child.kill();
}
console.log('| shape | build | gateway µs per delivery (median) | Redis µs per delivery (median) | rounds (gateway) |');
console.log('|---|---|---|---|---|');
for (const [key, runs] of results) {
  const [shape, label] = key.split('|');
  console.log(`| ${shape} | ${label} | ${median(runs.map((x) => x.gateway)).toFixed(2)} | ${median(runs.map((x) => x.redis)).toFixed(2)} | ${runs.map((x) => x.gateway.toFixed(1)).join(' / ')} |`);
}
