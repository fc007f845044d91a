#!/usr/bin/env node
// The append path alone: Redis CPU (INFO cpu) and client CPU per append of an open room,
// 20,000 appends to 200 rooms, 200 at a time, on a Redis of its own (after a warm-up round).
// With --against DIR (another checkout of this repository, built), alternates the two builds.
// Usage: node bench/append.mjs [--against /path/to/other/checkout] [--rounds 4]
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { freePort, startRedisServer } from '../packages/proc/dist/index.js';
import { root } from './lib/processes.mjs';
import { median } from './lib/report.mjs';

const { values } = parseArgs({ options: { against: { type: 'string' }, rounds: { type: 'string', default: '4' } } });
const N = 20_000;
const builds = [['this build', root], ...(values.against ? [['--against', values.against.endsWith('/') ? values.against : `${values.against}/`]] : [])];

async function measure(dir, url) {
  const { RedisBroker, KeySpace, createRedisClients } = await import(`${dir}packages/broker/dist/index.js?${Date.now()}`);
  const clients = createRedisClients(url, { commandTimeoutMs: 5000 });
  const broker = new RedisBroker({ command: clients.command, pubsub: clients.pubsub, keys: new KeySpace(`append:${Date.now()}:`), historySize: 1000 });
  const quiet = () => {};
  broker.start({ onRoomMessage: quiet, onStatus: quiet, onRoomLoss: quiet, onPresence: quiet, onRoomEvent: quiet, onUserFrame: quiet, onUserCommand: quiet, onNodeMessage: quiet });
  while (!broker.up) await new Promise((r) => setTimeout(r, 20));
  const admin = new Redis(url);
  const redisCpu = async () => {
    const info = await admin.info('cpu');
    return ['used_cpu_user', 'used_cpu_sys'].reduce((sum, k) => sum + Number(info.match(new RegExp(`${k}:([\\d.]+)`))[1]), 0);
  };
  const round = async () => {
    for (let i = 0; i < N; i += 200) {
      await Promise.all(Array.from({ length: 200 }, (_, j) => broker.append({
        room: `r${(i + j) % 200}`, user: 'u', head: '{"type":"message","room":"r","id":"', body: '","user":"u","text":"hello hello hello","ts":1}', ts: 1,
      })));
    }
  };
  await round();
  const [r0, c0] = [await redisCpu(), process.cpuUsage()];
  await round();
  const [r1, c1] = [await redisCpu(), process.cpuUsage(c0)];
  await broker.close();
  await clients.close();
  await admin.quit();
  return { redis: ((r1 - r0) / N) * 1e6, client: (c1.user + c1.system) / N };
}

const redis = await startRedisServer(await freePort(), mkdtempSync(join(tmpdir(), 'append-')));
const results = new Map(builds.map(([label]) => [label, []]));
try {
  for (let r = 0; r < Number(values.rounds); r++) {
    for (const [label, dir] of builds) results.get(label).push(await measure(dir, redis.url));
  }
} finally {
  await redis.child.kill();
}
console.log('| build | Redis µs per append (median) | client µs per append (median) | rounds |');
console.log('|---|---|---|---|');
for (const [label, runs] of results) {
  console.log(`| ${label} | ${median(runs.map((x) => x.redis)).toFixed(2)} | ${median(runs.map((x) => x.client)).toFixed(2)} | ${runs.map((x) => x.redis.toFixed(1)).join(' / ')} |`);
}
