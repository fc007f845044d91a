#!/usr/bin/env node
// Gateway CPU per delivered message with metrics on and off, on one fixed workload:
// MEMBERS sockets in one room, one sender at RATE messages/s for SECONDS, a single
// gateway on the in-process broker (local fan-out only, the path metrics touch most).
// Usage: npm run build && node bench/metrics-overhead.mjs [rounds]
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { cpuSeconds } from '../packages/proc/dist/index.js';

const MEMBERS = Number(process.env.MEMBERS ?? 300);
const RATE = Number(process.env.RATE ?? 150);
const SECONDS = Number(process.env.SECONDS ?? 8);
const ROUNDS = Number(process.argv[2] ?? 3);
const entry = fileURLToPath(new URL('../services/gateway/dist/main.js', import.meta.url));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));


async function startGateway(metrics) {
  const child = spawn(process.execPath, [entry], {
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', METRICS_ENABLED: String(metrics),
      RATE_LIMIT_PER_SEC: '100000', RATE_LIMIT_BURST: '100000', REDIS_URL: '' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise((resolve) => {
    child.stdout.on('data', (d) => {
      for (const line of d.toString().split('\n')) if (line.includes('"listening"')) resolve(JSON.parse(line).port);
    });
  });
  return { child, port };
}

async function open(url) {
  const ws = new WebSocket(url);
  await new Promise((resolve, reject) => { ws.once('message', resolve); ws.once('error', reject); });
  return ws;
}

async function round(metrics) {
  const { child, port } = await startGateway(metrics);
  const url = `ws://127.0.0.1:${port}/ws`;
  let delivered = 0;
  const members = [];
  for (let i = 0; i < MEMBERS; i++) {
    const ws = await open(`${url}?user=m${i}`);
    ws.on('message', (d) => { if (d[9] === 0x6d) delivered++; }); // {"type":"message"...
    ws.send(JSON.stringify({ type: 'join', room: 'bench' }));
    members.push(ws);
  }
  await sleep(500);
  const sender = members[0];
  const text = 'x'.repeat(100);
  delivered = 0;
  const cpu0 = cpuSeconds(child.pid);
  const t0 = Date.now();
  const total = RATE * SECONDS;
  for (let n = 0; n < total; n++) {
    sender.send(JSON.stringify({ type: 'send', room: 'bench', text }));
    const due = t0 + ((n + 1) * 1000) / RATE;
    if (due > Date.now()) await sleep(due - Date.now());
  }
  const expected = total * MEMBERS;
  while (delivered < expected && Date.now() - t0 < SECONDS * 1000 + 10_000) await sleep(20);
  const seconds = (Date.now() - t0) / 1000;
  const cpu = cpuSeconds(child.pid) - cpu0;
  for (const ws of members) ws.terminate();
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  return { delivered, expected, seconds, cpu, usPerDelivery: (cpu / delivered) * 1e6 };
}

const results = { on: [], off: [] };
for (let r = 0; r < ROUNDS; r++) {
  for (const metrics of r % 2 ? [false, true] : [true, false]) {
    const result = await round(metrics);
    results[metrics ? 'on' : 'off'].push(result);
    console.log(`round ${r + 1} metrics ${metrics ? 'on ' : 'off'}: ${result.delivered}/${result.expected} delivered in ${result.seconds.toFixed(1)} s, `
      + `gateway CPU ${result.cpu.toFixed(2)} s = ${result.usPerDelivery.toFixed(3)} µs/delivery`);
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const on = median(results.on.map((r) => r.usPerDelivery));
const off = median(results.off.map((r) => r.usPerDelivery));
console.log(`\n${MEMBERS} members, ${RATE} msg/s, ${SECONDS} s = ${(RATE * MEMBERS).toLocaleString()} deliveries/s offered`);
console.log(`median gateway CPU per delivery: metrics on ${on.toFixed(3)} µs, off ${off.toFixed(3)} µs (${(((on - off) / off) * 100).toFixed(1)}%)`);
