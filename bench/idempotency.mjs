#!/usr/bin/env node
// What idempotency keys cost Redis: memory per record, and CPU per append with and
// without a key, measured with the append script itself (no gateways), on a private
// redis-server. Writes bench/results/idempotency.json and the "## Idempotency" section.
// Usage: npm run build && node bench/idempotency.mjs [--no-write]  (about 30 seconds)
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { defineScripts } from '../packages/broker/dist/redis/scripts.js';
import { KeySpace } from '../packages/broker/dist/redis/keys.js';
import { report } from './redis-cluster.mjs';
import { cpuSeconds, freePort } from '../packages/proc/dist/index.js';
import { median } from './lib/report.mjs';

const root = fileURLToPath(new URL('../', import.meta.url));
const RESULTS = join(root, 'bench/results/idempotency.json');
const COMMAND_LINE = 'node bench/idempotency.mjs  # the Idempotency section (about 30 seconds)';
const APPENDS = 100_000;
const ROOMS = 40;
const ROUNDS = 3;
const TTL_MS = 600_000;

const port = await freePort();
const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
const redisCpu = () => cpuSeconds(redis.pid);
const client = new Redis(port, { lazyConnect: true });
for (let i = 0; i < 50; i++) { try { await client.connect(); break; } catch { await new Promise((r) => setTimeout(r, 100)); } }
defineScripts(client);
const keys = new KeySpace('chat:');
const usedMemory = async () => Number(/used_memory:(\d+)/.exec(await client.info('memory'))[1]);
// What the client library sends: 128-bit keys as 32 hex digits, scoped by the gateway to the user.
const newKey = () => [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, '0')).join('');
const body = `","user":"alice","text":"${'x'.repeat(100)}","ts":1764000000000}`;

/** APPENDS appends over ROOMS rooms (history 1000 each), pipelined; Redis CPU and memory they took. */
async function run(keyed) {
  await client.flushall();
  const before = await usedMemory();
  const cpuBefore = redisCpu();
  for (let i = 0; i < APPENDS; i += 500) {
    const pipeline = client.pipeline();
    for (let j = 0; j < 500; j++) {
      const room = `room-${(i + j) % ROOMS}`;
      const stream = keys.roomStream(room);
      // Archive and events off: their keys are any key of the room, their arguments empty.
      pipeline.chatAppend(stream, keys.roomTrimmed(room), keys.roomLost(room), keyed ? keys.roomOnce(room, `alice/${newKey()}`) : stream, stream,
        keys.roomChannel(room), 1000, 100, Date.now(), `{"type":"message","room":"${room}","id":"`, body, 'PUBLISH', '', keyed ? TTL_MS : '',
        '', room);
    }
    await pipeline.exec();
  }
  return { bytes: (await usedMemory()) - before, cpuUsPerAppend: ((redisCpu() - cpuBefore) / APPENDS) * 1e6 };
}

const rounds = [];
try {
  for (let i = 0; i < ROUNDS; i++) {
    const plain = await run(false);
    const keyed = await run(true);
    rounds.push({ plainCpuUs: plain.cpuUsPerAppend, keyedCpuUs: keyed.cpuUsPerAppend, bytesPerRecord: Math.round((keyed.bytes - plain.bytes) / APPENDS) });
    process.stderr.write(`round ${i + 1}: ${JSON.stringify(rounds.at(-1))}\n`);
  }
} finally {
  await client.quit();
  redis.kill();
}
const data = {
  date: new Date().toISOString().slice(0, 10), appends: APPENDS, rooms: ROOMS, rounds,
  bytesPerRecord: median(rounds.map((r) => r.bytesPerRecord)),
  plainCpuUs: Math.round(median(rounds.map((r) => r.plainCpuUs)) * 10) / 10,
  keyedCpuUs: Math.round(median(rounds.map((r) => r.keyedCpuUs)) * 10) / 10,
};
const perHour = (rate) => Math.round((rate * (TTL_MS / 1000) * data.bytesPerRecord) / 2 ** 20);
const section = `## Idempotency

What the idempotency key of \`send\` costs Redis, measured on ${data.date} by \`node bench/idempotency.mjs\`
(${APPENDS.toLocaleString('en-US')} appends of the append script over ${ROOMS} rooms, pipelined, on a private
redis-server; median of ${ROUNDS} rounds, Redis CPU from /proc):

| | per append |
|---|---|
| Redis memory of one idempotency record (key, value, expiry; the client library's 32-digit keys) | **${data.bytesPerRecord} bytes**, held for \`IDEMPOTENCY_TTL_S\` after its last use |
| Redis CPU, append without a key | ${data.plainCpuUs} µs |
| Redis CPU, append with a key (one GET, one SET with PX, in the same script) | ${data.keyedCpuUs} µs |

So the records of a service accepting N keyed messages a second take N × ${TTL_MS / 1000} s × ${data.bytesPerRecord} bytes with the
default window: ${perHour(100)} MiB at 100 messages/s, ${perHour(1000)} MiB at 1,000/s, on the shard of each room.
A window twice as long costs twice that; one shorter than the longest client outage turns a resend
after it into a second copy. Clients that send without a key (the contract's frames as they are) pay nothing.
`;
report(data, RESULTS, section, '## Idempotency', COMMAND_LINE);
