#!/usr/bin/env node
// Conversations (issue 23): what members-only rooms cost Redis, and the room list. Each part on a
// fresh redis-server (memory only, free port) and --gateways gateways (default 3, API_KEY set):
//   big     one room of --members (1,000) at --rate (100) msg/s for --seconds (15), with
//           `npm run load -- conversations`: members-only (every member connected, one connection
//           each, spread over the gateways; --joined (10%) of them joined and sending, the rest
//           only hear `unread`) against the same room open with every member joined. Redis CPU
//           per message: INFO used_cpu_sys + used_cpu_user of the Redis process over the sending
//           window and its drain, divided by the acknowledged messages; also less the background
//           Redis used in the --idle (3) s just before. At the end every member's latest unread
//           and rooms list must equal the messages by others (the load generator's check).
//   direct  a direct conversation (2 members: the sender joined, the other only hears unread)
//           against an open room of 2 (both joined), at the same rate, the same way.
//   list    one user in --rooms (1,000) rooms (half direct conversations, half groups of two,
//           made through the server API, one message in each from the other member), connected
//           alone: --requests (200) `rooms` requests one after another at the default limit (50)
//           and as many at the maximum (100), each timed from request to answer; the whole list
//           is then paged through and every room's count (1) checked.
// Targets: members-only Redis CPU per message <= 2x the open room's, with every count right
// (big and direct); rooms p99 <= 20 ms (list).
// Prints a markdown table to paste into BENCHMARKS.md, then (with --json FILE) writes the figures.
// Usage: npm run build && node bench/conversations.mjs [--only big,direct,list] [--seconds S]
//          [--rate N] [--members N] [--joined F] [--idle S] [--rooms N] [--requests N] [--gateways N]
//          [--json FILE]
// About 2.5 minutes on 2 cores. Run it on a quiet machine: the CPU figures are the Redis process's
// own, but its latency and the load generator's pace are not. Every process it starts is stopped
// by PID at the end, on error and on Ctrl-C; all traffic stays on 127.0.0.1.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { startGateways } from './lib/gateways.mjs';
import { benchScratch, children, killTree, log, root, stop, stopEverything } from './lib/processes.mjs';
import { cli, infoField, startTopology } from './lib/redis-nodes.mjs';
import { fmt, machine } from './lib/report.mjs';

const { values: args } = parseArgs({
  options: {
    only: { type: 'string' }, seconds: { type: 'string' }, rate: { type: 'string' }, members: { type: 'string' }, joined: { type: 'string' },
    idle: { type: 'string' }, rooms: { type: 'string' }, requests: { type: 'string' }, gateways: { type: 'string' }, json: { type: 'string' },
    help: { type: 'boolean' },
  },
});
if (args.help) {
  process.stdout.write(`${readFileSync(new URL(import.meta.url), 'utf8').split('\n').filter((l) => l.startsWith('//')).map((l) => l.slice(3)).join('\n')}\n`);
  process.exit(0);
}
const number = (v, fallback, min, max, name) => {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min || n > max) throw new Error(`--${name} must be a number from ${min} to ${max}, got "${v}"`);
  return n;
};
const PARTS = ['big', 'direct', 'list'];
const P = {
  parts: (args.only ?? PARTS.join(',')).split(',').filter(Boolean),
  seconds: number(args.seconds, 15, 1, 600, 'seconds'),
  rate: number(args.rate, 100, 1, 100_000, 'rate'),
  members: number(args.members, 1000, 2, 100_000, 'members'),
  joined: number(args.joined, 0.1, 0, 1, 'joined'),
  idle: number(args.idle, 3, 0, 600, 'idle'),
  rooms: number(args.rooms, 1000, 2, 100_000, 'rooms'),
  requests: number(args.requests, 200, 1, 100_000, 'requests'),
  gateways: number(args.gateways, 3, 1, 8, 'gateways'),
};
for (const part of P.parts) if (!PARTS.includes(part)) throw new Error(`--only: ${PARTS.join(', ')}, got "${part}"`);
const TARGETS = { cpuRatio: 2, roomsP99Ms: 20 };
const API_KEY = `bench-${Math.random().toString(36).slice(2)}`;
const GATEWAY_ENV = { API_KEY, API_RATE_LIMIT_PER_SEC: '1000000', API_RATE_LIMIT_BURST: '1000000' };

// ---------------------------------------------------------------- processes

/** A fresh Redis and the gateways; `run(system)`; then both stopped. */
async function withSystem(tmp, label, run) {
  const dir = mkdtempSync(join(tmp, `${label}-`));
  const redis = await startTopology({ kind: 'standalone' }, dir);
  let gateways;
  try {
    gateways = await startGateways(P.gateways, redis.env, GATEWAY_ENV);
    return await run({
      urls: gateways.urls, pids: gateways.pids, redisUrl: redis.env.REDIS_URL, redisPort: redis.nodes[0].port,
      api: gateways.urls[0].replace(/^ws/, 'http').replace(/\/ws$/, ''),
    });
  } finally {
    if (gateways) {
      gateways.state.stopping = true;
      await stop(gateways.procs);
    }
    await stop(redis.nodes.map((n) => n.child));
  }
}

/** `npm run load -- conversations ...` as a child process (its workers stopped by PID if it overruns); its JSON report. */
async function conversations(tmp, system, argv, label) {
  const out = join(tmp, `${label}.json`);
  const full = ['packages/loadgen/dist/cli.js', 'conversations', ...argv, '--url', system.urls.join(','), '--api-key', API_KEY,
    '--redis-url', system.redisUrl, ...system.pids.flatMap((p) => ['--server-pid', String(p)]), '--workers', '2', '--json', out];
  log(`  $ npm run load -- conversations ${argv.join(' ')}`);
  const child = spawn(process.execPath, full, { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
  child.loadgen = true;
  children.add(child);
  let last = '';
  createInterface({ input: child.stderr }).on('line', (line) => {
    if (line.startsWith('[')) last = line;
    else log(`    ${line}`);
  });
  const ticker = setInterval(() => { if (last) log(`    ${last}`); last = ''; }, 5000);
  const killer = setTimeout(() => { log(`    load generator overran: stopping it (${label})`); killTree(child.pid); }, (P.seconds + 150) * 1000);
  const code = await new Promise((r) => child.once('exit', r));
  clearTimeout(killer);
  clearInterval(ticker);
  children.delete(child);
  if (!existsSync(out)) throw new Error(`load generator wrote no report (${label}, exit ${code})`);
  return JSON.parse(readFileSync(out, 'utf8'));
}

// ---------------------------------------------------------------- big and direct

const traffic = ['--rate', String(P.rate), '--read-rate', '0', '--list-rate', '0', '--duration', String(P.seconds), '--idle', String(P.idle), '--quiet'];
const SHAPES = {
  big: ['--users', String(P.members), '--devices', '1', '--dms', '0', '--groups', '1', '--group-size', String(P.members), '--joined', String(P.joined)],
  direct: ['--users', '2', '--devices', '1', '--dms', '1', '--groups', '0', '--joined', '0'],
};

async function compare(tmp, part) {
  const out = {};
  for (const [mode, flags] of [['membersOnly', []], ['open', ['--open-rooms']]]) {
    log(`\n== ${part === 'big' ? `one room of ${fmt(P.members)}` : 'a direct conversation'}: ${mode === 'open' ? 'open room, every member joined' : 'members-only'}`);
    const report = await withSystem(tmp, `${part}-${mode}`, (system) => conversations(tmp, system, [...SHAPES[part], ...traffic, ...flags], `${part}-${mode}`));
    out[mode] = figures(report);
    log(`    Redis ${out[mode].redisCpuUs} µs per message (${out[mode].netRedisCpuUs} less idle); ${fmt(out[mode].acked)} messages; counts ${out[mode].countsRight ? 'right' : 'WRONG'}`);
  }
  out.ratio = ratio(out.membersOnly.redisCpuUs, out.open.redisCpuUs);
  out.netRatio = ratio(out.membersOnly.netRedisCpuUs, out.open.netRedisCpuUs);
  out.met = out.ratio !== null && out.ratio <= TARGETS.cpuRatio && out.membersOnly.countsRight && out.open.countsRight;
  return out;
}

function figures(r) {
  const c = r.counts;
  const t = r.traffic;
  return {
    acked: t.acked, sent: t.sent, offered: Math.round(t.rate * t.seconds), failed: t.failed, unanswered: t.unanswered,
    redisCpuUs: r.cost?.redisCpuUs ?? null, netRedisCpuUs: r.cost?.netRedisCpuUs ?? null, redisCpuPercent: r.cost?.redisCpuPercent ?? null,
    idleRedisCpuPercent: r.idle?.redisCpuPercent ?? null, scriptsPerMessage: r.cost?.redisScriptsPer ?? null, commandsPerMessage: r.cost?.redisCommandsPer ?? null,
    serverCpuUs: r.cost?.serverCpuUs ?? null, ackP99Ms: r.latencyMs.ack.p99, deliveryP99Ms: r.latencyMs.delivery.p99, unreadP99Ms: r.latencyMs.unread.p99,
    delivered: t.delivered, unreads: t.unreads, connections: r.connections, joined: r.joinedMemberships, pairs: c.pairs,
    mismatches: c.unreadMismatches + c.listMismatches + c.disagreeing + c.deliveryMismatches, examples: c.examples,
    countsRight: r.ok, openRooms: r.openRooms,
  };
}

// ---------------------------------------------------------------- list

async function api(system, method, path, body) {
  for (let attempt = 1; ; attempt++) {
    const res = await fetch(`${system.api}/api${path}`, {
      method, headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' }, ...(body !== undefined && { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    if (res.ok) return text ? JSON.parse(text) : null;
    if ((res.status !== 429 && res.status !== 503) || attempt >= 20) throw new Error(`${method} ${path}: ${res.status} ${text}`);
    await sleep(250);
  }
}

async function inBatches(items, batch, work) {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(batch, items.length) }, async () => {
    while (next < items.length) { const i = next++; await work(items[i], i); }
  }));
}

/** A WebSocket of `user` that sends frames with refs and resolves each with its answer. */
async function connect(url, user) {
  const { default: WebSocket } = await import('ws');
  const ws = new WebSocket(`${url}?user=${encodeURIComponent(user)}`, { perMessageDeflate: false });
  const pending = new Map();
  let refs = 0;
  await new Promise((resolve, reject) => {
    ws.once('error', reject);
    ws.on('message', (data) => {
      const raw = data.toString();
      if (raw.startsWith('{"type":"welcome"')) return resolve();
      const ref = /"ref":"([^"]+)"/.exec(raw)?.[1];
      if (ref !== undefined && pending.has(ref)) {
        pending.get(ref)(raw);
        pending.delete(ref);
      }
    });
  });
  return {
    request: (frame) => new Promise((resolve) => {
      const ref = `q${++refs}`;
      pending.set(ref, resolve);
      ws.send(JSON.stringify({ ...frame, ref }));
    }),
    close: () => ws.terminate(),
  };
}

async function partList(tmp) {
  log(`\n== one user in ${fmt(P.rooms)} rooms: rooms requests`);
  return withSystem(tmp, 'list', async (system) => {
    const run = Math.random().toString(36).slice(2, 8);
    const hub = `hub-${run}`;
    const peers = Array.from({ length: P.rooms }, (_, i) => `peer-${run}-${i}`);
    const made = performance.now();
    const rooms = [];
    await inBatches(peers, 16, async (peer, i) => {
      let room;
      if (i % 2 === 0) room = (await api(system, 'POST', `/users/${hub}/open`, { with: peer })).room;
      else await api(system, 'PUT', `/rooms/${(room = `grp-${run}-${i}`)}/membership`, { members: [hub, peer] });
      await api(system, 'POST', `/rooms/${encodeURIComponent(room)}/messages`, { user: peer, text: `hello from ${peer}` });
      rooms.push(room);
    });
    log(`  ${fmt(rooms.length)} rooms made and posted to through the server API in ${((performance.now() - made) / 1000).toFixed(1)} s`);
    const client = await connect(system.urls[0], hub);
    try {
      const timed = async (limit) => {
        const times = [];
        for (let i = 0; i < P.requests; i++) {
          const started = performance.now();
          const raw = await client.request(limit === undefined ? { type: 'rooms' } : { type: 'rooms', limit });
          times.push(performance.now() - started);
          if (!raw.startsWith('{"type":"rooms"')) throw new Error(`rooms answered ${raw.slice(0, 200)}`);
        }
        return quantiles(times);
      };
      await timed(undefined); // warm-up: the first requests compile the path; not counted
      const before = redisSample(system.redisPort);
      const byDefault = await timed(undefined);
      const redis = redisSince(system.redisPort, before, P.requests);
      const byMax = await timed(100);
      // The whole list, once: every room there once, each with one unread message.
      const listed = new Map();
      let cursor;
      do {
        const page = JSON.parse(await client.request({ type: 'rooms', limit: 100, ...(cursor && { before: cursor }) }));
        for (const entry of page.rooms) listed.set(entry.room, entry.unread);
        cursor = page.next;
      } while (cursor);
      const wrong = rooms.filter((room) => listed.get(room) !== 1).length + Math.max(0, listed.size - rooms.length);
      log(`  rooms p99 ${byDefault.p99} ms (limit 50), ${byMax.p99} ms (limit 100); Redis ${redis.cpuUs} µs and ${redis.commands} commands per request; ${fmt(listed.size)} rooms listed, ${wrong} wrong`);
      return { rooms: rooms.length, requests: P.requests, byDefault, byMax, redis, listed: listed.size, wrong, met: byDefault.p99 <= TARGETS.roomsP99Ms && byMax.p99 <= TARGETS.roomsP99Ms && wrong === 0 };
    } finally {
      client.close();
    }
  });
}

/** Redis's CPU seconds and commands so far (INFO through redis-cli; the INFO itself is one command). */
function redisSample(port) {
  const info = cli(port, 'info', 'all');
  return { cpu: Number(infoField(info, 'used_cpu_sys')) + Number(infoField(info, 'used_cpu_user')), commands: Number(infoField(info, 'total_commands_processed')) };
}

function redisSince(port, before, requests) {
  const after = redisSample(port);
  return { cpuUs: round2(((after.cpu - before.cpu) / requests) * 1e6), commands: round2((after.commands - before.commands - 1) / requests) };
}

function quantiles(times) {
  const sorted = [...times].sort((a, b) => a - b);
  const at = (q) => round2(sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]);
  return { p50: at(0.5), p99: at(0.99), max: round2(sorted.at(-1)) };
}

// ---------------------------------------------------------------- the table

const ratio = (a, b) => (a !== null && b ? round2(a / b) : null);
const times = (r) => (r === null ? 'n/a' : `${r.toFixed(2)}×`);
const verdict = (met) => (met ? 'met' : '**missed**');

function table(data) {
  const out = [
    `### Conversations: members-only rooms and the room list`,
    '',
    `${P.gateways} gateways and one Redis (memory only) on ${data.machine}; load average ${data.loadBefore} before, ${data.loadAfter} after; `
      + `${data.date.slice(0, 10)}, ${data.seconds} s. \`node bench/conversations.mjs${data.argv ? ` ${data.argv}` : ''}\`.`,
    '',
  ];
  const rows = [];
  const both = (cmp, what) => {
    const m = cmp.membersOnly;
    const o = cmp.open;
    rows.push([`${what}: Redis CPU per message, µs (less the idle background)`, `${fmt(m.redisCpuUs, 1)} (${fmt(m.netRedisCpuUs, 1)})`, `${fmt(o.redisCpuUs, 1)} (${fmt(o.netRedisCpuUs, 1)})`,
      `${times(cmp.ratio)} (${times(cmp.netRatio)})`, `≤ ${TARGETS.cpuRatio}× and every count right: ${verdict(cmp.met)}`]);
    rows.push([`${what}: scripts / commands per message`, `${fmt(m.scriptsPerMessage, 2)} / ${fmt(m.commandsPerMessage, 1)}`, `${fmt(o.scriptsPerMessage, 2)} / ${fmt(o.commandsPerMessage, 1)}`, '', '']);
    rows.push([`${what}: counts checked at the end`, `${fmt(m.pairs)} members: ${m.mismatches} wrong`, `${fmt(o.pairs)} members: ${o.mismatches} deliveries wrong`, '', '']);
    rows.push([`${what}: messages acked of offered; send→ack p99`, `${fmt(m.acked)} of ${fmt(m.offered)}; ${fmt(m.ackP99Ms, 1)} ms`, `${fmt(o.acked)} of ${fmt(o.offered)}; ${fmt(o.ackP99Ms, 1)} ms`, '', '']);
    rows.push([`${what}: delivery p99 (joined) / unread p99`, `${fmt(m.deliveryP99Ms, 1)} / ${fmt(m.unreadP99Ms, 1)} ms`, `${fmt(o.deliveryP99Ms, 1)} ms / –`, '', '']);
  };
  if (data.big) both(data.big, `room of ${fmt(P.members)} at ${P.rate} msg/s (${Math.round(P.joined * 100)}% joined)`);
  if (data.direct) both(data.direct, `direct conversation vs open room of 2 at ${P.rate} msg/s`);
  if (rows.length) {
    out.push('| measure | members-only | open (all joined) | members-only ÷ open | target |', '|---|---|---|---|---|');
    for (const r of rows) out.push(`| ${r.join(' | ')} |`);
    out.push('');
  }
  if (data.list) {
    const l = data.list;
    out.push(`| one user in ${fmt(l.rooms)} rooms, ${fmt(l.requests)} \`rooms\` requests one at a time | p50 | p99 | max | target |`, '|---|---|---|---|---|');
    out.push(`| default limit (50) | ${l.byDefault.p50} ms | ${l.byDefault.p99} ms | ${l.byDefault.max} ms | p99 ≤ ${TARGETS.roomsP99Ms} ms: ${verdict(l.byDefault.p99 <= TARGETS.roomsP99Ms)} |`);
    out.push(`| limit 100 | ${l.byMax.p50} ms | ${l.byMax.p99} ms | ${l.byMax.max} ms | p99 ≤ ${TARGETS.roomsP99Ms} ms: ${verdict(l.byMax.p99 <= TARGETS.roomsP99Ms)} |`);
    out.push(`| Redis per request at the default limit (CPU, commands) | ${fmt(l.redis.cpuUs, 1)} µs | ${fmt(l.redis.commands, 1)} commands | | |`);
    out.push(`| whole list paged through | ${fmt(l.listed)} rooms | ${l.wrong} with a wrong count | | |`, '');
  }
  const notes = [];
  for (const part of ['big', 'direct']) {
    for (const mode of ['membersOnly', 'open']) {
      const f = data[part]?.[mode];
      if (f && f.sent < 0.9 * f.offered) notes.push(`${part} ${mode}: the load generator sent ${fmt(f.sent)} of ${fmt(f.offered)} (a busy machine)`);
      if (f?.examples?.length) notes.push(`${part} ${mode}: ${f.examples.join('; ')}`);
    }
    const cmp = data[part];
    if (cmp && cmp.ratio !== null && cmp.netRatio !== null && (cmp.ratio <= TARGETS.cpuRatio) !== (cmp.netRatio <= TARGETS.cpuRatio)) {
      notes.push(`${part}: less the idle background the ratio is ${times(cmp.netRatio)}, on the other side of the target`);
    }
  }
  out.push(...notes.map((n) => `Note: ${n}.`));
  if (data.big || data.direct) out.push('Redis CPU: INFO used_cpu_sys + used_cpu_user of the Redis process from the start of the sending to the end of its drain, over the acknowledged messages; '
    + `"less the idle background" takes off what Redis used per second in the ${P.idle} s held idle just before, for the same span.`);
  return out.join('\n');
}

// ---------------------------------------------------------------- main

async function main() {
  const began = Date.now();
  const loadBefore = loadavg()[0].toFixed(1);
  const tmp = benchScratch('conversations', 10);
  const data = { date: new Date().toISOString(), machine: machine(), loadBefore, params: P, targets: TARGETS, argv: shownArgs() };
  try {
    if (P.parts.includes('big')) data.big = await compare(tmp, 'big');
    if (P.parts.includes('direct')) data.direct = await compare(tmp, 'direct');
    if (P.parts.includes('list')) data.list = await partList(tmp);
  } finally {
    await stopEverything();
    rmSync(tmp, { recursive: true, force: true });
  }
  data.loadAfter = loadavg()[0].toFixed(1);
  data.seconds = Math.round((Date.now() - began) / 1000);
  data.ok = ['big', 'direct', 'list'].every((part) => data[part] === undefined || data[part].met);
  process.stdout.write(`\n${table(data)}\n`);
  if (args.json) {
    writeFileSync(args.json, `${JSON.stringify(data, null, 2)}\n`);
    log(`wrote ${args.json}`);
  }
  log(`\nfinished in ${data.seconds} s: ${data.ok ? 'every target met' : 'a target was missed'}`);
  process.exit(data.ok ? 0 : 1);
}

/** The command line as given, without --json and its file. */
function shownArgs() {
  const argv = process.argv.slice(2);
  const out = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--json') i++;
    else if (!argv[i].startsWith('--json=')) out.push(argv[i]);
  }
  return out.join(' ');
}

const round2 = (n) => Math.round(n * 100) / 100;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

main().catch(async (err) => {
  log(`conversations bench: ${err.stack ?? err}`);
  await stopEverything();
  process.exit(1);
});
