#!/usr/bin/env node
// Rooms of any size: one big room and many small ones, on three systems with the same load
// generator, each as 3 server processes on one redis-server (memory only) of its own:
//   - this gateway (MEMBER_LIST_LIMIT at its default, 100),
//   - the minimal relay (bench/baselines/minimal-relay.mjs: uWebSockets.js, one Redis channel
//     per room, one PUBLISH per message; nothing else),
//   - Socket.IO 4.8 + @socket.io/redis-adapter (bench/baselines/socketio-server.mjs).
// Parts (--only=a,b):
//   big-room   one room of 20,000 (gateway and relay): fill time, CPU per join, join p99 at
//              100 / 1,000 / 10,000 / 20,000 members, idle cost, memory per member, 20 msg/s
//   room-5000  one room of 5,000, all three systems: fill time, CPU per delivery at 20 msg/s
//   many-rooms 3,000 rooms of 2, all three: idle Redis CPU and scripts/s, memory per connection
//              and per room, delivery p99 and CPU per delivery at 600 and 3,000 msg/s
//   grow       6,000 idle clients (gateway) as rooms of 2 grow from 3,000 to 100,000
//   storm      a gateway holding half of a room of 10,000 SIGKILLed (npm run load -- storm)
// CPU: the 3 server processes together from /proc (packages/proc); Redis from INFO cpu,
// scripts/s from INFO commandstats, memory from INFO used_memory; all read by the load
// generator around each phase (--server-pid, --redis-url). Writes bench/results/rooms.json
// (parts not run are kept from the last run) and the "## Rooms of any size" section.
// Usage: npm run build && node bench/rooms.mjs [--quick] [--only=big-room,room-5000,many-rooms,grow,storm] [--no-write] [--report-only]
// (about 15 minutes; --quick about 3). Every process it starts is stopped by PID at the end,
// on error and on Ctrl-C; all traffic stays on 127.0.0.1.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { freePort } from '../packages/proc/dist/index.js';
import { startGateways } from './lib/gateways.mjs';
import { children, killTree, log, root, start, stop, stopEverything } from './lib/processes.mjs';
import { startTopology } from './lib/redis-nodes.mjs';
import { fmt, machine, report } from './lib/report.mjs';
import { fill } from './lib/template.mjs';

export const COMMAND_LINE = 'node bench/rooms.mjs  # the Rooms of any size section (about 15 minutes, --quick about 3); npm run bench runs it unless --skip-rooms';
const RESULTS = join(root, 'bench/results/rooms.json');
const HEADING = '## Rooms of any size';
const quick = process.argv.includes('--quick');
const PARTS = ['big-room', 'room-5000', 'many-rooms', 'grow', 'storm'];

/** Every size and rate; --quick shrinks them so the whole run fits in a few minutes. */
const P = quick ? {
  bigMembers: 2000, checkpoints: [100, 1000, 2000], probeJoins: 100, probeRate: 100, compareMembers: 1000, roomRate: 20,
  rooms: 200, roomRates: [40, 200], growClients: 600, growRooms: [300, 3000], stormMembers: 2000, stormVictims: 1000, stormRate: 2,
  idle: 2, growIdle: 3, duration: 3, settle: 5, stormEnv: { PRESENCE_TTL_MS: '3000' },
} : {
  bigMembers: 20_000, checkpoints: [100, 1000, 10_000, 20_000], probeJoins: 1000, probeRate: 200, compareMembers: 5000, roomRate: 20,
  rooms: 3000, roomRates: [600, 3000], growClients: 6000, growRooms: [3000, 10_000, 30_000, 100_000], stormMembers: 10_000, stormVictims: 5000, stormRate: 2,
  idle: 10, growIdle: 20, duration: 10, settle: 15, stormEnv: {},
};

const SYSTEMS = {
  chat: { name: 'this gateway', transport: 'chat' },
  relay: { name: 'minimal relay (uWS + Redis)', transport: 'chat', script: 'bench/baselines/minimal-relay.mjs' },
  socketio: { name: 'Socket.IO 4.8 + redis-adapter', transport: 'socketio', script: 'bench/baselines/socketio-server.mjs' },
};

// ---------------------------------------------------------------- processes

/** 3 baseline servers (relay or Socket.IO) on one Redis, each on a free port. */
async function startBaseline(system, redisUrl, inspectors) {
  const procs = [];
  const ports = [];
  for (let i = 0; i < 3; i++) {
    const env = { PORT: '0', NODE_ID: `${system.transport === 'socketio' ? 'sio' : 'relay'}-${i + 1}`, REDIS_URL: redisUrl, ...inspect(inspectors[i]) };
    const child = start(process.execPath, [system.script], { env, stdout: 'pipe' });
    procs.push(child);
    ports.push(await new Promise((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`${system.script} exited with ${code} before listening`)));
      createInterface({ input: child.stdout }).on('line', (line) => {
        try { const entry = JSON.parse(line); if (entry.msg === 'listening') resolve(entry.port); } catch { /* not JSON */ }
      });
    }));
  }
  const urls = ports.map((p) => (system.transport === 'socketio' ? `http://127.0.0.1:${p}` : `ws://127.0.0.1:${p}/ws`));
  return { procs, urls, pids: procs.map((p) => p.pid) };
}

/**
 * Every server listens for the inspector on a port of its own, so the load generator can ask
 * each for a full GC before it reads memory (--gc-inspector): the same for all three systems.
 */
const inspect = (port) => ({ NODE_OPTIONS: `--inspect=127.0.0.1:${port}` });

/** A fresh Redis and 3 servers of `systemId`; `run(servers, redis)`; then both stopped. */
async function withSystem(tmp, systemId, env, run) {
  const dir = mkdtempSync(join(tmp, `${systemId}-`));
  const redis = await startTopology({ kind: 'standalone' }, dir);
  const redisUrl = redis.env.REDIS_URL;
  const system = SYSTEMS[systemId];
  let servers;
  try {
    const inspectors = [await freePort(), await freePort(), await freePort()];
    servers = system.script ? await startBaseline(system, redisUrl, inspectors) : await startGateways(3, redis.env, env, (i) => inspect(inspectors[i]));
    return await run({ ...servers, inspectors, transport: system.transport }, { url: redisUrl, pid: redis.nodes[0].child.pid });
  } finally {
    if (servers?.state) servers.state.stopping = true;
    if (servers) await stop(servers.procs);
    await stop(redis.nodes.map((n) => n.child));
  }
}

const PROGRESS = /^(filled|joins at|idle|\d+ msg\/s|connecting|connected|victims|disrupting|back|watching|load:)/;

/** The load generator (a child process, its workers included, stopped by PID if it overruns); returns its JSON report. */
async function loadgen(tmp, args, servers, redisUrl, label, extra = []) {
  const out = join(tmp, `${label}.json`);
  const target = args[0] === 'storm' ? servers.urls.flatMap((u) => ['--url', u]) : ['--url', servers.urls.join(','), ...servers.pids.flatMap((p) => ['--server-pid', String(p)]),
    ...(servers.inspectors ?? []).flatMap((p) => ['--gc-inspector', String(p)]), '--redis-url', redisUrl, '--transport', servers.transport];
  log(`  $ npm run load -- ${args.join(' ')}`);
  const child = spawn(process.execPath, ['packages/loadgen/dist/cli.js', ...args, ...target, ...extra, '--json', out], { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
  child.loadgen = true;
  children.add(child);
  createInterface({ input: child.stderr }).on('line', (line) => { if (PROGRESS.test(line)) log(`    ${line}`); });
  const killer = setTimeout(() => { log(`    load generator overran: stopping it (${label})`); killTree(child.pid); }, 20 * 60_000);
  const code = await new Promise((r) => child.once('exit', r));
  clearTimeout(killer);
  children.delete(child);
  if (!existsSync(out)) throw new Error(`load generator wrote no report (${label}, exit ${code})`);
  return JSON.parse(readFileSync(out, 'utf8'));
}

// ---------------------------------------------------------------- the parts

const bigArgs = (members, checkpoints, probes) => ['big-room', '--members', String(members), '--checkpoints', checkpoints.length ? checkpoints.join(',') : 'none',
  ...(probes ? ['--probe-joins', String(P.probeJoins), '--probe-rate', String(P.probeRate)] : []), '--rate', String(P.roomRate), '--duration', String(P.duration), '--idle', String(P.idle)];
const manyArgs = (rooms, rates, clients, idle) => ['many-rooms', '--rooms', String(rooms), '--members', '2', ...(clients ? ['--clients', String(clients)] : []),
  '--rate', rates.length ? rates.join(',') : '0', '--duration', String(P.duration), '--idle', String(idle)];
const shown = (args, servers = '3 gateways') => `npm run load -- ${args.join(' ')} --url <${servers}' URLs> --server-pid <their PIDs> --redis-url <their Redis>`;

async function partBigRoom(tmp) {
  const args = bigArgs(P.bigMembers, P.checkpoints, true);
  const out = { date: today(), command: shown(args) };
  for (const id of ['chat', 'relay']) {
    log(`\n== one room of ${fmt(P.bigMembers)}: ${SYSTEMS[id].name}`);
    out[id] = await withSystem(tmp, id, {}, (servers, redis) => loadgen(tmp, args, servers, redis.url, `big-${id}`));
  }
  return out;
}

async function partRoom5000(tmp) {
  const args = bigArgs(P.compareMembers, [], false);
  const out = { date: today(), command: shown(args) };
  for (const id of ['chat', 'relay', 'socketio']) {
    log(`\n== one room of ${fmt(P.compareMembers)}: ${SYSTEMS[id].name}`);
    out[id] = await withSystem(tmp, id, {}, (servers, redis) => loadgen(tmp, args, servers, redis.url, `room5000-${id}`));
  }
  return out;
}

async function partManyRooms(tmp) {
  const args = manyArgs(P.rooms, P.roomRates, 0, P.idle);
  const out = { date: today(), command: shown(args) };
  for (const id of ['chat', 'relay', 'socketio']) {
    log(`\n== ${fmt(P.rooms)} rooms of 2: ${SYSTEMS[id].name}`);
    out[id] = await withSystem(tmp, id, {}, (servers, redis) => loadgen(tmp, args, servers, redis.url, `many-${id}`));
  }
  return out;
}

async function partGrow(tmp) {
  const out = { date: today(), clients: P.growClients, rows: [] };
  for (const rooms of P.growRooms) {
    const args = manyArgs(rooms, [], P.growClients, P.growIdle);
    const perClient = Math.ceil((rooms * 2) / P.growClients);
    const env = { MAX_ROOMS_PER_CONNECTION: String(Math.max(100, perClient)) };
    log(`\n== ${fmt(P.growClients)} idle clients in ${fmt(rooms)} rooms of 2: this gateway`);
    const result = await withSystem(tmp, 'chat', env, (servers, redis) => loadgen(tmp, args, servers, redis.url, `grow-${rooms}`));
    out.rows.push({ rooms, roomsPerClient: perClient, env, command: shown(args), result });
  }
  return out;
}

async function partStorm(tmp) {
  log(`\n== a gateway holding half of a room of ${fmt(P.stormMembers)} SIGKILLed: this gateway`);
  const args = ['storm', '--rooms', '1', '--clients', String(P.stormVictims), '--members', String(P.stormMembers), '--rate', String(P.stormRate), '--settle', String(P.settle), '--timeout', '180'];
  const result = await withSystem(tmp, 'chat', P.stormEnv, (servers, redis) => loadgen(tmp, args, servers, redis.url, 'storm',
    ['--kill', String(servers.pids[0]), ...servers.pids.slice(1).flatMap((p) => ['--survivor-pid', String(p)]), '--redis-pid', String(redis.pid)]));
  return {
    date: today(), members: P.stormMembers, victims: P.stormVictims, rate: P.stormRate, settle: P.settle, env: P.stormEnv, result,
    command: `npm run load -- ${args.join(' ')} --url <gateway 1> --url <gateway 2> --url <gateway 3> --kill <gateway 1 PID> --survivor-pid <gateway 2 PID> --survivor-pid <gateway 3 PID> --redis-pid <Redis PID>`,
  };
}

const RUNNERS = { 'big-room': ['bigRoom', partBigRoom], 'room-5000': ['room5000', partRoom5000], 'many-rooms': ['manyRooms', partManyRooms], grow: ['grow', partGrow], storm: ['storm', partStorm] };
const today = () => new Date().toISOString().slice(0, 10);

// ---------------------------------------------------------------- the section

const us = (n) => fmt(n, n !== undefined && n !== null && n < 10 ? 1 : 0);
const pct = (n) => (n === undefined || n === null ? 'n/a' : `${fmt(n, n < 10 ? 2 : 0)}%`);
const bytes = (n) => (n === undefined || n === null ? 'n/a' : fmt(n));
const ms = (n) => fmt(n, 1);
const x = (a, b) => (a && b ? a / b : null);
const times = (r) => (r === null ? 'n/a' : `${r.toFixed(2)}×`);
const verdict = (ok) => (ok === null ? 'n/a' : ok ? 'met' : '**missed**');
const perDelivery = (s) => (s ? (s.serverCpuUsPerDelivery ?? 0) + (s.redis?.cpuUsPerDelivery ?? 0) : null);
const integrity = (r) => `${sum(r.steps.map((s) => s.lost))} / ${sum(r.steps.map((s) => s.duplicates))} / ${sum(r.steps.map((s) => s.reordered))}`;
const sum = (list) => list.reduce((a, b) => a + (b ?? 0), 0);
const step = (r, i = 0) => r?.steps?.[i];
/** Where the load generator's own senders fell behind their schedule (timers late on a busy machine). */
const fell = (s) => (s && s.sent < 0.9 * s.rate * s.seconds ? ` (the load generator sent ${fmt(s.sent)} of ${fmt(s.rate * s.seconds)})` : '');
/** CPU per delivery less the background measured while idle just before: what each delivery adds. */
function netPerDelivery(r, s) {
  if (!s?.cpuWindowSeconds) return null;
  const idle = r.idle.cost;
  const server = (s.serverCpuSeconds - ((idle.serverCpuPercent ?? 0) / 100) * s.cpuWindowSeconds) / Math.max(1, s.delivered) * 1e6;
  const redis = s.redis ? (s.redis.cpuSeconds - ((idle.redisCpuPercent ?? 0) / 100) * s.cpuWindowSeconds) / Math.max(1, s.delivered) * 1e6 : 0;
  return { server, redis, sum: server + redis };
}
const netLine = (systems, pick) => `Less the background each system used while idle just before (what a delivery adds), server + Redis, µs per delivery: ${
  systems.filter(([, r]) => r).map(([id, r]) => `${SYSTEMS[id].name} ${pick(r).map((s) => {
    const n = netPerDelivery(r, s);
    return `${n ? `${us(n.server)} + ${us(n.redis)} = **${us(n.sum)}**` : 'n/a'} at ${fmt(s?.rate)} msg/s`;
  }).join(', ')}`).join('; ')}.`;

function bigRoomTables(b) {
  const { chat, relay } = b;
  const rows = [
    ['time to connect and join every member', (r) => `**${fmt(r.fill.seconds, 1)} s** (${fmt(r.fill.joinsPerSec)} joins/s)`],
    ['server CPU per member (connect + join)', (r) => `${us(r.fill.cost.serverCpuUs)} µs`],
    ['Redis CPU per member; scripts per member', (r) => `${us(r.fill.cost.redisCpuUs)} µs; ${fmt(r.fill.cost.redisScriptsPer, 2)}`],
    ['presence / occupancy frames to the members during the fill, all together', (r) => `${fmt(r.fill.notices.presence)} / ${fmt(r.fill.notices.occupancy)}`],
    ['Redis memory per member', (r) => `${bytes(r.memory.redisBytesPerMembership)} bytes`],
    ['server memory per connection: RSS as it stands / after a full GC', (r) => `${bytes(r.memory.serverBytesPerConnection)} / ${bytes(r.memory.serverLiveBytesPerConnection)} bytes`],
    [`idle ${P.idle} s: server CPU / Redis CPU (% of one core) / Redis scripts/s`, (r) => `${pct(r.idle.cost.serverCpuPercent)} / ${pct(r.idle.cost.redisCpuPercent)} / ${fmt(r.idle.cost.redisScriptsPerSec, 1)}`],
    [`${b.chat.steps[0]?.rate ?? P.roomRate} msg/s: delivered/s`, (r) => `${fmt(step(r)?.deliveriesPerSec)} of ${fmt((step(r)?.rate ?? 0) * r.members)} offered${fell(step(r))}`],
    ['delivery p50 / p99 (ms)', (r) => `${ms(step(r)?.latencyMs.p50)} / **${ms(step(r)?.latencyMs.p99)}**`],
    ['CPU per delivery: server / Redis (µs)', (r) => `${us(step(r)?.serverCpuUsPerDelivery)} / ${us(step(r)?.redis?.cpuUsPerDelivery)}`],
    ['load-generator CPU while sending', (r) => pct(step(r)?.loadgenCpuPercent)],
    ['lost / duplicated / reordered', integrity],
  ];
  const main = `| one room of ${fmt(chat.members)} | ${SYSTEMS.chat.name} | ${SYSTEMS.relay.name} |\n|---|---|---|\n`
    + rows.map(([label, f]) => `| ${label} | ${chat ? f(chat) : 'n/a'} | ${relay ? f(relay) : 'n/a'} |`).join('\n');
  const probes = chat.checkpoints.map((c, i) => {
    const r = relay?.checkpoints[i];
    return `| ${fmt(c.members)} | ${ms(c.joinMs.p50)} / **${ms(c.joinMs.p99)}** / ${ms(c.joinMs.max)} | ${us(c.cost.serverCpuUs)} / ${us(c.cost.redisCpuUs)} | **${us(c.net?.serverCpuUs)}** / ${us(c.net?.redisCpuUs)} | ${pct(c.idle?.serverCpuPercent)} / ${pct(c.idle?.redisCpuPercent)} | ${fmt(c.cost.redisScriptsPer, 2)} | `
      + `${fmt(c.notices.presence / Math.max(1, c.joins), 1)} / ${fmt(c.notices.occupancy / Math.max(1, c.joins), 1)} | ${r ? `${ms(r.joinMs.p99)} / ${us(r.cost.serverCpuUs)}` : 'n/a'} |`;
  });
  return `${main}

Joins into the room as it grows: the fill stops with C − 1 members; after 1 s, the background
(the servers and Redis with the room idle) is measured for 2 s; then ${fmt(chat.checkpoints[0]?.joins ?? P.probeJoins)} joins at
${fmt(P.probeRate)}/s over 20 probe connections spread over the 3 servers, each joiner the C-th member
(\`joined\` says \`"count":C\`) and each leaving again at once. CPU is over the probes' window, so
"per join" is per join and its leave; "less the background" takes away what the same servers used
idle just before, at that size (this is what the join-cost target is judged on).

| members (C) | join p50 / p99 / max (ms) | CPU per join, server / Redis (µs) | less the background: server / Redis (µs) | background: server / Redis (% of one core) | Redis scripts per join | presence / occupancy frames to the members, per join | minimal relay: join p99 (ms) / server CPU per join (µs) |
|---|---|---|---|---|---|---|---|
${probes.join('\n')}`;
}

function compareTable(c) {
  const row = (id) => {
    const r = c[id];
    if (!r) return `| ${SYSTEMS[id].name} | n/a |||||||`;
    const s = step(r);
    return `| ${SYSTEMS[id].name} | **${fmt(r.fill.seconds, 2)}** (${fmt(r.fill.joinsPerSec)}/s) | ${us(r.fill.cost.serverCpuUs)} / ${us(r.fill.cost.redisCpuUs)} | `
      + `${fmt(s?.deliveriesPerSec)}${fell(s)} | ${ms(s?.latencyMs.p50)} / **${ms(s?.latencyMs.p99)}** | ${us(s?.serverCpuUsPerDelivery)} + ${us(s?.redis?.cpuUsPerDelivery)} = **${us(perDelivery(s))}** | ${pct(s?.loadgenCpuPercent)} | ${integrity(r)} |`;
  };
  return `| system | connected and joined in (s) | CPU per member, server / Redis (µs) | delivered/s at ${P.roomRate} msg/s | delivery p50 / p99 (ms) | CPU per delivery, server + Redis (µs) | load-generator CPU | lost / duplicated / reordered |
|---|---|---|---|---|---|---|---|
${['chat', 'relay', 'socketio'].map(row).join('\n')}

${netLine(['chat', 'relay', 'socketio'].map((id) => [id, c[id]]), (r) => [step(r)])}`;
}

function manyTable(m) {
  const rates = (m.chat ?? m.relay).steps.map((s) => s.rate);
  const row = (id) => {
    const r = m[id];
    if (!r) return `| ${SYSTEMS[id].name} | n/a |`;
    const i = r.idle.cost;
    return `| ${SYSTEMS[id].name} | **${pct(i.redisCpuPercent)}** / ${fmt(i.redisScriptsPerSec, 1)} / ${fmt(i.redisCommandsPerSec, 1)} | ${pct(i.serverCpuPercent)} | `
      + `${bytes(r.memory.serverBytesPerConnection)} / **${bytes(r.memory.serverLiveBytesPerConnection)}** | ${bytes(r.memory.redisBytesPerRoom)} | `
      + r.steps.map((s) => `**${ms(s.latencyMs.p99)}** | ${us(s.serverCpuUsPerDelivery)} + ${us(s.redis?.cpuUsPerDelivery)} = **${us(perDelivery(s))}**`).join(' | ')
      + ` | ${integrity(r)} |`;
  };
  return `| system | idle: Redis CPU (% of one core) / scripts/s / commands/s | idle: server CPU | server memory per connection (bytes): RSS as it stands / after a full GC | Redis memory per room (bytes) | ${rates.map((rate) => `${fmt(rate)} msg/s: delivery p99 (ms) | ${fmt(rate)} msg/s: CPU per delivery, server + Redis (µs)`).join(' | ')} | lost / duplicated / reordered |
|---|---|---|---|---|${rates.map(() => '---|---|').join('')}---|
${['chat', 'relay', 'socketio'].map(row).join('\n')}

${netLine(['chat', 'relay', 'socketio'].map((id) => [id, m[id]]), (r) => r.steps)}`;
}

function growTable(g) {
  return `| rooms of 2 | rooms per client | idle Redis CPU (% of one core) | Redis scripts/s | Redis commands/s | idle server CPU | Redis memory per room (bytes) | joins (all), joins/s |
|---|---|---|---|---|---|---|---|
${g.rows.map(({ rooms, roomsPerClient, result: r }) => `| ${fmt(rooms)} | ${roomsPerClient} | **${pct(r.idle.cost.redisCpuPercent)}** | ${fmt(r.idle.cost.redisScriptsPerSec, 2)} | ${fmt(r.idle.cost.redisCommandsPerSec, 1)} | ${pct(r.idle.cost.serverCpuPercent)} | ${bytes(r.memory.redisBytesPerRoom)} | ${fmt(r.memberships)}, ${fmt(r.fill.joinsPerSec)}/s |`).join('\n')}`;
}

function stormTable(st) {
  const r = st.result;
  const by = r.notices?.bystanders;
  const cpu = r.survivorCpuPercent;
  return `| victims (on gateway 1) | bystanders (gateways 2, 3) | all back after | rejoin p50 / p99 (ms) | presence frames to the bystanders: all / most to one | occupancy frames to the bystanders: all / most to one | over | survivors' CPU (2 gateways, % of one core): before / until all back / next ${st.settle} s / busiest second | Redis CPU | errors | lost / duplicated |
|---|---|---|---|---|---|---|---|---|---|---|
| ${fmt(r.affected)} of ${fmt(r.victims)} | ${fmt(r.bystanders)} | ${r.allBackMs === null ? 'not all' : `${fmt(r.allBackMs / 1000, 1)} s`} | ${fmt(r.rejoinMs.p50)} / ${fmt(r.rejoinMs.p99)} | **${fmt(by?.presence)} / ${fmt(by?.maxPresence)}** | ${fmt(by?.occupancy)} / ${fmt(by?.maxOccupancy)} | ${fmt(r.notices?.seconds, 1)} s | ${cpu ? `${cpu.before} / ${cpu.during} / ${cpu.settle ?? 'n/a'} / ${cpu.peak}` : 'n/a'} | ${r.redisCpuPercent ?? 'n/a'}% | ${r.gaps + r.sendFailures + r.stillAway} | ${r.lost} / ${r.duplicated} |`;
}

function targets(d) {
  const out = [];
  const c5 = d.room5000;
  if (c5?.chat && c5?.relay) {
    const r = x(c5.chat.fill.seconds, c5.relay.fill.seconds);
    out.push([`${fmt(c5.chat.members)} members connected and joined in ≤ 1.5× the minimal relay's time`, `${fmt(c5.chat.fill.seconds, 2)} s vs ${fmt(c5.relay.fill.seconds, 2)} s: ${times(r)}`, verdict(r === null ? null : r <= 1.5)]);
  }
  const m = d.manyRooms;
  if (m?.chat && m?.relay) {
    const p99 = m.chat.steps.map((s, i) => [s.rate, x(s.latencyMs.p99, m.relay.steps[i]?.latencyMs.p99), s.latencyMs.p99, m.relay.steps[i]?.latencyMs.p99]);
    out.push([`${fmt(m.chat.rooms)} rooms of 2: delivery p99 ≤ 2× the relay's`, p99.map(([rate, r, a, b]) => `${fmt(rate)} msg/s: ${ms(a)} vs ${ms(b)} ms, ${times(r)}`).join('; '), verdict(p99.every(([, r]) => r !== null && r <= 2))]);
    const cpu = m.chat.steps.map((s, i) => [s.rate, x(perDelivery(s), perDelivery(m.relay.steps[i])), perDelivery(s), perDelivery(m.relay.steps[i])]);
    out.push([`${fmt(m.chat.rooms)} rooms of 2: CPU per delivery (servers + Redis) ≤ 1.3× the relay's`, cpu.map(([rate, r, a, b]) => `${fmt(rate)} msg/s: ${us(a)} vs ${us(b)} µs, ${times(r)}`).join('; '), verdict(cpu.every(([, r]) => r !== null && r <= 1.3))]);
    // Judged after a full GC in every server: what the connections hold, not how far V8 let its heap grow meanwhile.
    const mem = x(m.chat.memory.serverLiveBytesPerConnection, m.relay.memory.serverLiveBytesPerConnection);
    const rss = x(m.chat.memory.serverBytesPerConnection, m.relay.memory.serverBytesPerConnection);
    out.push(['idle gateway memory per connection ≤ 1.5× the relay\'s (that shape)', `after a full GC ${bytes(m.chat.memory.serverLiveBytesPerConnection)} vs ${bytes(m.relay.memory.serverLiveBytesPerConnection)} bytes: ${times(mem)}; RSS as it stands ${bytes(m.chat.memory.serverBytesPerConnection)} vs ${bytes(m.relay.memory.serverBytesPerConnection)}: ${times(rss)}`, verdict(mem === null ? null : mem <= 1.5)]);
  }
  const b = d.bigRoom?.chat;
  if (b?.checkpoints.length >= 2) {
    const [first, last] = [b.checkpoints[0], b.checkpoints.at(-1)];
    const cpuR = x(last.net?.serverCpuUs, first.net?.serverCpuUs);
    const p99R = x(last.joinMs.p99, first.joinMs.p99);
    out.push([`server CPU per join and join p99 at ${fmt(last.members)} members within 2× of their values at ${fmt(first.members)}`,
      `CPU (less the background) ${us(last.net?.serverCpuUs)} vs ${us(first.net?.serverCpuUs)} µs: ${times(cpuR)} (with it: ${us(last.cost.serverCpuUs)} vs ${us(first.cost.serverCpuUs)} µs); p99 ${ms(last.joinMs.p99)} vs ${ms(first.joinMs.p99)} ms: ${times(p99R)}`,
      verdict(cpuR === null || p99R === null ? null : cpuR <= 2 && p99R <= 2)]);
  }
  if (c5?.chat && c5?.relay) {
    const r = x(perDelivery(step(c5.chat)), perDelivery(step(c5.relay)));
    out.push([`CPU per delivery (servers + Redis) in a ${fmt(c5.chat.members)}-member room ≤ 1.15× the relay's`, `${us(perDelivery(step(c5.chat)))} vs ${us(perDelivery(step(c5.relay)))} µs: ${times(r)}`, verdict(r === null ? null : r <= 1.15)]);
  }
  if (b) out.push(['Redis memory per member stated', `${bytes(b.memory.redisBytesPerMembership)} bytes per member (room of ${fmt(b.members)}, idle, no messages yet)`, 'stated']);
  const g = d.grow;
  if (g?.rows.length) {
    const cpus = g.rows.map((row) => row.result.idle.cost.redisCpuPercent);
    out.push([`Redis CPU with ${fmt(g.clients)} idle clients in rooms of 2 ≤ 1% of a core, flat as rooms grow to ${fmt(g.rows.at(-1).rooms)}`,
      g.rows.map((row) => `${fmt(row.rooms)} rooms: ${pct(row.result.idle.cost.redisCpuPercent)} (${fmt(row.result.idle.cost.redisScriptsPerSec, 2)} scripts/s)`).join('; '),
      verdict(cpus.every((c) => c !== undefined && c <= 1))]);
  }
  const st = d.storm?.result;
  if (st?.notices) {
    const by = st.notices.bystanders;
    out.push([`a gateway holding half of a ${fmt(d.storm.members)}-member room SIGKILLed: the others see occupancy changes, not ${fmt(st.victims)} presence frames each`,
      `at most ${fmt(by.maxPresence)} presence and ${fmt(by.maxOccupancy)} occupancy frames to one bystander in ${fmt(st.notices.seconds, 1)} s; survivors' CPU ${st.survivorCpuPercent ? `${st.survivorCpuPercent.before}% before, ${st.survivorCpuPercent.during}% until all back, busiest second ${st.survivorCpuPercent.peak}%` : 'n/a'}`,
      verdict(by.maxPresence === 0 && by.maxOccupancy <= Math.ceil(st.notices.seconds) + 1)]);
  }
  return `| target | measured | |\n|---|---|---|\n${out.map(([t, mm, v]) => `| ${t} | ${mm} | ${v} |`).join('\n')}`;
}

/** The "## Rooms of any size" section from bench/results/rooms.json ('' when it was never run). */
export function roomsSection(data = existsSync(RESULTS) ? JSON.parse(readFileSync(RESULTS, 'utf8')) : null) {
  if (!data) return '';
  const dates = [...new Set(PARTS.map((p) => data[RUNNERS[p][0]]?.date).filter(Boolean))];
  const parts = [fill('rooms-intro', {
    runDates: dates.join(', '), quickFlag: data.quick ? ' --quick' : '', seconds: fmt(data.seconds), machine: data.machine,
    loadBefore: data.loadBefore, loadAfter: data.loadAfter,
  })];
  parts.push(`### Against the targets\n\n${targets(data)}\n`);
  if (data.bigRoom?.chat) parts.push(`### One room of ${fmt(data.bigRoom.chat.members)}\n\n${bigRoomTables(data.bigRoom)}\n`);
  if (data.room5000) parts.push(`### One room of ${fmt((data.room5000.chat ?? data.room5000.relay).members)}, three systems\n\n${compareTable(data.room5000)}\n`);
  if (data.manyRooms) parts.push(`### ${fmt((data.manyRooms.chat ?? data.manyRooms.relay).rooms)} rooms of 2, three systems\n\n${manyTable(data.manyRooms)}\n`);
  if (data.grow) parts.push(`### Idle, as rooms grow (${fmt(data.grow.clients)} clients, rooms of 2, this gateway)\n\n${growTable(data.grow)}\n`);
  if (data.storm) parts.push(`### A gateway holding half of a room of ${fmt(data.storm.members)} SIGKILLed\n\n${stormTable(data.storm)}\n`);
  parts.push(fill('rooms-notes', {
    listLimit: 100, settle: data.storm?.settle ?? P.settle, presenceTtl: Number(data.storm?.env?.PRESENCE_TTL_MS ?? 10_000) / 1000,
    commands: [
      data.bigRoom && `${data.bigRoom.command}   # one room (big-room)`,
      data.room5000 && `${data.room5000.command}   # room-5000 (--transport socketio for Socket.IO)`,
      data.manyRooms && `${data.manyRooms.command}   # many-rooms`,
      ...(data.grow?.rows ?? []).map((r) => `${r.command}   # grow${r.env.MAX_ROOMS_PER_CONNECTION !== '100' ? ` (gateways with MAX_ROOMS_PER_CONNECTION=${r.env.MAX_ROOMS_PER_CONNECTION})` : ''}`),
      data.storm && `${data.storm.command}   # storm${Object.keys(data.storm.env ?? {}).length ? ` (gateways with ${Object.entries(data.storm.env).map(([k, v]) => `${k}=${v}`).join(' ')})` : ''}`,
    ].filter(Boolean).join('\n'),
  }));
  return parts.join('\n');
}

// ---------------------------------------------------------------- main

async function main() {
  const only = process.argv.find((a) => a.startsWith('--only='))?.slice(7).split(',') ?? PARTS;
  for (const part of only) if (!PARTS.includes(part)) throw new Error(`--only: unknown part "${part}"; known: ${PARTS.join(', ')}`);
  const previous = existsSync(RESULTS) ? JSON.parse(readFileSync(RESULTS, 'utf8')) : {};
  if (process.argv.includes('--report-only')) {
    report(previous, RESULTS, roomsSection(previous), HEADING, COMMAND_LINE);
    return;
  }
  // Parts not run keep their last figures, unless those came from the other size (--quick or not).
  const data = previous.quick === quick ? { ...previous } : {};
  const began = Date.now();
  const loadBefore = loadavg()[0].toFixed(1);
  const tmp = mkdtempSync(join(tmpdir(), 'bench-rooms-'));
  const onSignal = async () => { await stopEverything(); rmSync(tmp, { recursive: true, force: true }); process.exit(130); };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const watchdog = quick ? 15 : 60;
  setTimeout(async () => { log(`rooms bench: over ${watchdog} minutes, stopping`); await stopEverything(); process.exit(1); }, watchdog * 60_000).unref();
  try {
    for (const part of PARTS.filter((p) => only.includes(p))) {
      const [key, run] = RUNNERS[part];
      data[key] = await run(tmp);
    }
  } finally {
    await stopEverything();
    rmSync(tmp, { recursive: true, force: true });
  }
  Object.assign(data, {
    quick, finishedAt: new Date().toISOString(), seconds: Math.round((Date.now() - began) / 1000), machine: machine(), loadBefore, loadAfter: loadavg()[0].toFixed(1),
    params: P, parts: only,
  });
  log(`\nfinished in ${data.seconds} s`);
  mkdirSync(join(root, 'bench/results'), { recursive: true });
  report(data, RESULTS, roomsSection(data), HEADING, COMMAND_LINE);
  if (process.argv.includes('--no-write')) log(`\n${roomsSection(data)}`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch(async (err) => {
    log(`rooms bench: ${err.stack ?? err}`);
    await stopEverything();
    process.exit(1);
  });
}
