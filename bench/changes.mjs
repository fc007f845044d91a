#!/usr/bin/env node
// Changes of messages (issue 24) on a Redis of its own, through RedisBroker and its MessageChanges:
//  1. Redis CPU (INFO cpu) per operation: a send (append), an edit, a reaction added, one removed, a delete,
//     each 20,000 times over 200 rooms, 200 at a time, after a warm-up round of sends.
//  2. History pages of 50 (broker.history, one round trip each): a room with no change against a room
//     of the same 1,000 messages with 20 % of them edited and every one reacted to (the reader's own
//     reaction on a tenth), 2,000 pages each, alternating, from random points: p50/p99 latency and
//     Redis CPU per page (INFO cpu, each room in a phase of its own).
// Usage: node bench/changes.mjs [--ops 20000] [--pages 2000]
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { freePort, startRedisServer } from '../packages/proc/dist/index.js';
import { KeySpace, RedisBroker, createRedisClients } from '../packages/broker/dist/index.js';

const { values } = parseArgs({ options: { ops: { type: 'string', default: '20000' }, pages: { type: 'string', default: '2000' } } });
const N = Number(values.ops);
const PAGES = Number(values.pages);
const ROOMS = 200;
const AT_ONCE = 200;
const quiet = () => {};
const listener = { onRoomMessage: quiet, onStatus: quiet, onRoomLoss: quiet, onPresence: quiet, onRoomEvent: quiet, onUserFrame: quiet, onUserCommand: quiet, onNodeMessage: quiet };
const head = (room, type = 'message') => `{"type":"${type}","room":"${room}","id":"`;
const body = (user, text, ts) => `","user":"${user}","text":${JSON.stringify(text)},"ts":${ts}}`;

const redis = await startRedisServer(await freePort(), mkdtempSync(join(tmpdir(), 'changes-')));
const clients = createRedisClients(redis.url, { commandTimeoutMs: 5000 });
const broker = new RedisBroker({ command: clients.command, pubsub: clients.pubsub, keys: new KeySpace('bench:'), historySize: 100_000 });
broker.start(listener);
while (!broker.up) await new Promise((r) => setTimeout(r, 20));
const admin = new Redis(redis.url);
const redisCpu = async () => {
  const info = await admin.info('cpu');
  return ['used_cpu_user', 'used_cpu_sys'].reduce((sum, k) => sum + Number(info.match(new RegExp(`${k}:([\\d.]+)`))[1]), 0);
};
/** Runs `op(i)` for i < n, AT_ONCE at a time; Redis CPU µs per op. */
async function perOp(n, op) {
  const before = await redisCpu();
  for (let i = 0; i < n; i += AT_ONCE) await Promise.all(Array.from({ length: Math.min(AT_ONCE, n - i) }, (_, j) => op(i + j)));
  return ((await redisCpu()) - before) / n * 1e6;
}

try {
  const send = (i, prefix = 'm') => broker.append({ room: `r${i % ROOMS}`, user: 'u', head: head(`r${i % ROOMS}`), body: body('u', `${prefix} hello hello hello`, 1), ts: 1 });
  await perOp(N, (i) => send(i, 'warm-up'));
  const ids = new Array(N);
  const costs = {};
  costs.send = await perOp(N, async (i) => { ids[i] = (await send(i)).id; });
  const change = (i, type) => ({ room: `r${i % ROOMS}`, user: 'u', target: ids[i], ts: 2, head: head(`r${i % ROOMS}`, type) });
  costs.edit = await perOp(N, (i) => broker.changes.edit({
    ...change(i, 'edit'), text: '"hello, edited"', body: `","target":"${ids[i]}","user":"u","text":"hello, edited","ts":2}`, messageHead: head(`r${i % ROOMS}`),
  }));
  costs['reaction added'] = await perOp(N, (i) => broker.changes.react({ ...change(i, 'reaction'), user: `v${i % 50}`, reaction: 'thumbsup', add: true }));
  costs['reaction removed'] = await perOp(N, (i) => broker.changes.react({ ...change(i, 'reaction'), user: `v${i % 50}`, reaction: 'thumbsup', add: false }));
  costs.delete = await perOp(N, (i) => broker.changes.delete({ ...change(i, 'delete'), body: `","target":"${ids[i]}","user":"u","ts":3}`, moderator: false }));

  console.log(`Redis CPU per operation (${N.toLocaleString()} each over ${ROOMS} rooms, ${AT_ONCE} at a time):\n`);
  console.log('| operation | Redis µs | × a send |');
  console.log('|---|---|---|');
  for (const [name, us] of Object.entries(costs)) console.log(`| ${name} | ${us.toFixed(2)} | ${(us / costs.send).toFixed(2)} |`);

  // Pages: two rooms of 1,000 messages, one of them changed as the target says.
  const plain = [];
  const changed = [];
  for (let i = 0; i < 1000; i++) {
    plain.push((await broker.append({ room: 'plain', user: 'u', head: head('plain'), body: body('u', `message ${i} of the plain room`, i), ts: i })).id);
    changed.push((await broker.append({ room: 'changed', user: 'u', head: head('changed'), body: body('u', `message ${i} of the changed room`, i), ts: i })).id);
  }
  for (let i = 0; i < 1000; i++) {
    const target = changed[i];
    const c = { room: 'changed', target, ts: 5, head: head('changed', 'reaction') };
    if (i % 5 === 0) {
      await broker.changes.edit({ ...c, user: 'u', head: head('changed', 'edit'), text: `"message ${i}, edited"`, body: `","target":"${target}","user":"u","text":"message ${i}, edited","ts":5}`, messageHead: head('changed') });
    }
    await broker.changes.react({ ...c, user: i % 10 === 0 ? 'reader' : `fan${i % 7}`, reaction: i % 3 === 0 ? 'heart' : 'thumbsup', add: true });
  }
  // Latency: alternating rooms, page by page. Redis CPU: each room's pages in a phase of their own.
  const latencies = { plain: [], changed: [] };
  const page = async (which) => {
    const ids = which === 'plain' ? plain : changed;
    const t0 = process.hrtime.bigint();
    const got = await broker.history(which, ids[50 + Math.floor(Math.random() * 950)], 50, 'reader');
    if (got.length !== 50) throw new Error(`a ${which} page of ${got.length}`);
    return Number(process.hrtime.bigint() - t0) / 1e3;
  };
  for (let p = 0; p < PAGES * 2; p++) {
    const which = p % 2 === 0 ? 'plain' : 'changed';
    latencies[which].push(await page(which));
  }
  const pageCpu = {};
  for (const which of ['plain', 'changed']) {
    const before = await redisCpu();
    for (let p = 0; p < PAGES; p++) await page(which);
    pageCpu[which] = ((await redisCpu()) - before) / PAGES * 1e6;
  }
  const pct = (xs, q) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * q)];
  console.log(`\nHistory pages of 50 (${PAGES.toLocaleString()} of each, alternating; the changed room: 20 % edited, every message reacted to):\n`);
  console.log('| room | p50 µs | p99 µs | Redis CPU µs per page |');
  console.log('|---|---|---|---|');
  for (const which of ['plain', 'changed']) {
    console.log(`| ${which} | ${pct(latencies[which], 0.5).toFixed(0)} | ${pct(latencies[which], 0.99).toFixed(0)} | ${pageCpu[which].toFixed(1)} |`);
  }
  console.log(`\np99 changed / plain: ${(pct(latencies.changed, 0.99) / pct(latencies.plain, 0.99)).toFixed(2)}× (target ≤ 1.5×)`);
} finally {
  await broker.close();
  await clients.close();
  await admin.quit();
  await redis.child.kill();
}
