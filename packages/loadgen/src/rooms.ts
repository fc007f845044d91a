import { Histogram } from './histogram.js';
import { emptyPlans, mixedTransport, runStep, type StepResult } from './coordinator.js';
import { cost, Meter, round, type Cost, type Usage } from './meter.js';
import type { WorkerPlan } from './plan.js';
import type { TransportName } from './transport.js';
import { connectionsPerWorker, Progress, Workers } from './workers.js';

/**
 * Rooms of any size, the two ends:
 * - big-room: one room of `members` (in as many worker processes as the file limit
 *   needs). It fills in stages; at each checkpoint C the room holds C - 1 members and
 *   probe connections join (each joiner sees a count of C) and leave again, timed one
 *   by one, with the server's and Redis's CPU per join over the probe window.
 * - many-rooms: `rooms` rooms of `members` (default 3,000 of 2) over `clients`
 *   connections (default one per membership; fewer: each client joins several rooms,
 *   so rooms can grow without connections growing).
 * Both then hold the room(s) idle for `idleSeconds` (server and Redis CPU, Redis
 * scripts/s, server RSS and Redis memory per connection / room / member), then send
 * at each of `rates` for `duration` s (delivery latency, CPU per delivery, loss).
 */
export type RoomsScenario = 'big-room' | 'many-rooms';

export interface RoomsOptions {
  scenario: RoomsScenario;
  transport: TransportName;
  urls: string[];
  rooms: number;
  members: number;
  /** Connections; each joins rooms × members / clients rooms. */
  clients: number;
  /** big-room: members that send; many-rooms: rooms with a sender (one member of each). */
  senders: number;
  /** Messages per second of each sending step, all senders together. */
  rates: number[];
  size: number;
  /** Seconds of each sending step. */
  duration: number;
  /** Connections opened per second, all workers together (0: as fast as possible, 200 at a time per worker). */
  ramp: number;
  workers: number;
  localAddresses: string[];
  /** big-room: room sizes at which joins are probed. */
  checkpoints: number[];
  probeJoins: number;
  /** Probe joins started per second. */
  probeRate: number;
  /** Seconds the filled room(s) are held idle and measured. */
  idleSeconds: number;
  serverPids: number[];
  /** Redis servers to read INFO from (CPU, scripts, memory). */
  redisUrls: string[];
  /** Inspector ports of the server processes (`--inspect`): memory is also read after a full GC in each. */
  gcInspectorPorts: number[];
  maxP99Ms: number;
  progress: (line: string) => void;
}

export interface Latency { p50: number; p99: number; max: number }

export interface RoomsReport {
  scenario: RoomsScenario;
  transport: TransportName;
  urls: string[];
  rooms: number;
  members: number;
  clients: number;
  /** Joins the fill made: rooms × members. */
  memberships: number;
  connected: number;
  workers: number;
  fill: {
    /** Connecting and joining every member (probe windows excluded). */
    seconds: number;
    joinsPerSec: number;
    connectMs: Latency;
    joinMs: Latency;
    /** Server and Redis CPU per membership (its connection's share included). */
    cost: Cost;
    notices: { presence: number; occupancy: number };
    errors: number;
  };
  /** big-room: joins into the room at each checkpoint size. */
  checkpoints: Array<{
    members: number; joins: number; failed: number; joinMs: Latency; joinsPerSec: number; cost: Cost; notices: { presence: number; occupancy: number };
    /** The room held idle at C - 1 members just before the probes, and the probes' CPU per join less that background. */
    idle: Cost; net: { serverCpuUs?: number; redisCpuUs?: number };
  }>;
  idle: { cost: Cost; notices: { presence: number; occupancy: number } };
  memory: {
    serverRssBeforeBytes: number;
    serverRssAfterBytes: number;
    serverBytesPerConnection: number;
    /** The same after a full GC in each server (with --gc-inspector): what the connections hold. */
    serverLiveBytesPerConnection?: number;
    redisBytes?: number;
    redisBytesPerRoom?: number;
    redisBytesPerMembership?: number;
  };
  steps: StepResult[];
  ok: boolean;
}

const PROBE_CONNECTIONS = 20;
const SETTLE_MS = 2000;
/** Before each checkpoint's probes: let the fill's last announcements pass, then measure the background. */
const PROBE_SETTLE_MS = 1000;
const PROBE_IDLE_MS = 2000;

export async function runRooms(o: RoomsOptions): Promise<RoomsReport> {
  const memberships = o.rooms * o.members;
  const workers = new Workers(Math.max(o.workers, Math.ceil((o.clients + PROBE_CONNECTIONS) / connectionsPerWorker(o.transport))));
  const progress = new Progress();
  workers.on((message, index) => {
    if (message.type === 'tick') progress.add(message, index);
  });
  const ticker = setInterval(() => o.progress(progress.line()), 1000);
  const meter = new Meter(o.serverPids, o.redisUrls, o.gcInspectorPorts);
  try {
    const { plans, room } = planRooms({ ...o, workers: workers.count });
    const started = workers.collect('started', 60_000);
    plans.forEach((plan, i) => workers.send({ type: 'start', plan }, i));
    await started;
    await workers.flush();
    const liveBefore = await meter.serverRssAfterGc();
    const memoryMark = await meter.mark();
    const rssBefore = meter.serverRss();

    // The fill, in stages: up to C - 1 members, then probes at C, for each checkpoint.
    const stages = o.scenario === 'big-room' ? o.checkpoints.filter((c) => c > 1 && c <= o.clients).sort((a, b) => a - b) : [];
    const fillUsage: Usage = { seconds: 0 };
    const fillJoins = new Histogram();
    const fillNotices = { presence: 0, occupancy: 0 };
    let fillErrors = 0;
    const checkpoints: RoomsReport['checkpoints'] = [];
    const fillTo = async (upTo: number): Promise<void> => {
      await workers.flush();
      progress.reset();
      const mark = await meter.mark();
      const ready = workers.collect('ready', 60_000 + memberships * 5);
      workers.send({ type: 'open', upTo });
      await ready;
      add(fillUsage, await meter.since(mark));
      await workers.flush();
      fillJoins.merge(progress.totalJoinLatency.toJSON());
      fillNotices.presence += progress.total.presence;
      fillNotices.occupancy += progress.total.occupancy;
      fillErrors += progress.total.errors;
      o.progress(`filled: ${progress.connectedNow()} connected`);
    };
    for (const c of stages) {
      await fillTo(c - 1);
      await sleep(PROBE_SETTLE_MS);
      const idleMark = await meter.mark();
      await sleep(PROBE_IDLE_MS);
      const idleCost = cost(await meter.since(idleMark), 1);
      await workers.flush();
      progress.reset();
      const mark = await meter.mark();
      const probed = workers.collect('probed', 60_000 + (o.probeJoins / o.probeRate) * 2000, 1);
      workers.send({ type: 'probe', room: room!, joins: o.probeJoins, perSec: o.probeRate }, 0);
      const { report } = (await probed)[0]!;
      await workers.flush();
      const usage = await meter.since(mark);
      const latency = new Histogram(report.latency.counts);
      latency.max = report.latency.max;
      const probeCost = cost(usage, report.joins);
      const net = (total: number | undefined, idlePercent: number | undefined) => (total === undefined || idlePercent === undefined ? undefined
        : round(total - (idlePercent / 100) * usage.seconds * 1e6 / Math.max(1, report.joins), 1));
      const point = {
        members: c, joins: report.joins, failed: report.failed, joinMs: quantiles(latency), joinsPerSec: round(report.joins / Math.max(0.001, usage.seconds), 1),
        cost: probeCost, notices: { presence: progress.total.presence, occupancy: progress.total.occupancy },
        idle: idleCost, net: { serverCpuUs: net(probeCost.serverCpuUs, idleCost.serverCpuPercent), redisCpuUs: net(probeCost.redisCpuUs, idleCost.redisCpuPercent) },
      };
      checkpoints.push(point);
      o.progress(`joins at ${c} members: p50 ${point.joinMs.p50} ms, p99 ${point.joinMs.p99} ms; server ${point.cost.serverCpuUs ?? '?'} µs, Redis ${point.cost.redisCpuUs ?? '?'} µs per join (and its leave)`);
    }
    await fillTo(Number.MAX_SAFE_INTEGER);
    const connected = progress.connectedNow();

    // Idle: what holding the rooms costs.
    await sleep(SETTLE_MS);
    await workers.flush();
    progress.reset();
    const idleMark = await meter.mark();
    await sleep(o.idleSeconds * 1000);
    await workers.flush();
    const idleUsage = await meter.since(idleMark);
    const idle = { cost: cost(idleUsage, 1), notices: { presence: progress.total.presence, occupancy: progress.total.occupancy } };
    const memoryUsage = await meter.since(memoryMark);
    const rssAfter = meter.serverRss();
    const memory: RoomsReport['memory'] = {
      serverRssBeforeBytes: rssBefore, serverRssAfterBytes: rssAfter, serverBytesPerConnection: Math.round((rssAfter - rssBefore) / Math.max(1, connected)),
    };
    const liveAfter = await meter.serverRssAfterGc();
    if (liveBefore !== undefined && liveAfter !== undefined) memory.serverLiveBytesPerConnection = Math.round((liveAfter - liveBefore) / Math.max(1, connected));
    if (memoryUsage.redis) {
      memory.redisBytes = memoryUsage.redis.memoryBytes;
      memory.redisBytesPerRoom = Math.round(memoryUsage.redis.memoryBytes / o.rooms);
      memory.redisBytesPerMembership = Math.round(memoryUsage.redis.memoryBytes / memberships);
    }
    o.progress(`idle ${o.idleSeconds} s: server CPU ${idle.cost.serverCpuPercent ?? '?'}%, Redis CPU ${idle.cost.redisCpuPercent ?? '?'}%, ${idle.cost.redisScriptsPerSec ?? '?'} scripts/s`);

    const steps: StepResult[] = [];
    const stepOptions = { senders: o.senders, serverPids: o.serverPids, findMax: false, maxP99Ms: o.maxP99Ms, progress: o.progress, drainUntilQuiet: true };
    for (const rate of o.rates.filter((r) => r > 0)) {
      const step = await runStep(workers, progress, stepOptions, rate, o.duration, meter);
      steps.push(step);
      o.progress(`${rate} msg/s: ${step.deliveriesPerSec} deliveries/s, p99 ${step.latencyMs.p99} ms, lost ${step.lost}, server ${step.serverCpuUsPerDelivery ?? '?'} µs, Redis ${step.redis?.cpuUsPerDelivery ?? '?'} µs per delivery`);
    }

    const connect = new Histogram();
    for (const final of await workers.request('final')) connect.merge(final.report.connect);
    const fillSeconds = fillUsage.seconds;
    return {
      scenario: o.scenario, transport: o.transport, urls: o.urls, rooms: o.rooms, members: o.members, clients: o.clients, memberships, connected, workers: workers.count,
      fill: {
        seconds: round(fillSeconds, 3), joinsPerSec: Math.round(memberships / Math.max(0.001, fillSeconds)), connectMs: quantiles(connect), joinMs: quantiles(fillJoins),
        cost: cost(fillUsage, memberships), notices: fillNotices, errors: fillErrors,
      },
      checkpoints, idle, memory, steps,
      ok: connected === o.clients && fillErrors === 0 && checkpoints.every((c) => c.failed === 0) && steps.every((s) => s.ok && s.failed === 0),
    };
  } finally {
    clearInterval(ticker);
    await workers.exit();
  }
}

/**
 * big-room: client i is a member of the one room, on URL i mod URLs; the first
 * `senders` send. many-rooms: membership j (of rooms × members) is member j mod
 * members of room j div members, held by client j mod clients; a room's members
 * are consecutive clients, so on different URLs; its first member sends.
 */
export function planRooms(o: RoomsOptions): { plans: WorkerPlan[]; room?: string } {
  const run = Math.random().toString(36).slice(2, 8);
  const plans = emptyPlans({ ...o, scenario: 'fanout', churn: 0, resend: false }, true);
  const clients = Array.from({ length: o.clients }, (_, i) => ({ index: i, url: o.urls[i % o.urls.length]!, rooms: [] as string[], sends: [] as Array<{ room: string; key: number }> }));
  let room: string | undefined;
  if (o.scenario === 'big-room') {
    room = `big-${run}`;
    for (const c of clients) {
      c.rooms.push(room);
      if (c.index < o.senders) c.sends.push({ room, key: c.index });
    }
  } else {
    for (let j = 0; j < o.rooms * o.members; j++) {
      const r = Math.floor(j / o.members);
      const c = clients[j % o.clients]!;
      const name = `rooms-${run}-${r}`;
      c.rooms.push(name);
      if (j % o.members === 0 && r < o.senders) c.sends.push({ room: name, key: j });
    }
  }
  // A mixed run: clients on URL i mod URLs, so mixedTransport(i) (a room's members are consecutive clients).
  const mixed = o.transport === 'mixed';
  for (const c of clients) plans[c.index % plans.length]!.clients.push(mixed ? { ...c, transport: mixedTransport(c.index, o.urls.length) } : c);
  if (o.scenario === 'big-room') {
    plans[0]!.probes = Array.from({ length: PROBE_CONNECTIONS }, (_, i) => ({ index: i, url: o.urls[i % o.urls.length]!, ...(mixed && { transport: mixedTransport(i, o.urls.length) }) }));
  }
  return { plans, room };
}

export function describeRooms(r: RoomsReport): string {
  const cpu = (c: Cost, what: string) => [
    c.serverCpuUs !== undefined ? `server ${c.serverCpuUs} µs` : undefined,
    c.redisCpuUs !== undefined ? `Redis ${c.redisCpuUs} µs, ${c.redisScriptsPer} scripts, ${c.redisCommandsPer} commands` : undefined,
  ].filter(Boolean).join('; ') + (c.serverCpuUs !== undefined || c.redisCpuUs !== undefined ? ` per ${what}` : '(give --server-pid, --redis-url for CPU)');
  const ms = (l: Latency) => `p50 ${l.p50} ms, p99 ${l.p99} ms, max ${l.max} ms`;
  const rows: Array<[string, string]> = [
    ['scenario', `${r.scenario} (${r.transport}) against ${r.urls.length} URL(s): ${r.rooms === 1 ? `1 room of ${r.members}` : `${r.rooms} rooms of ${r.members}`}, ${r.clients} clients, ${r.workers} workers`],
    ['fill', `${r.connected} connected, ${r.memberships} joins in ${r.fill.seconds} s (${r.fill.joinsPerSec} joins/s); errors ${r.fill.errors}`],
    ['  connect', ms(r.fill.connectMs)],
    ['  join', ms(r.fill.joinMs)],
    ['  cpu', cpu(r.fill.cost, 'member (connect + join)')],
    ['  frames', `presence ${r.fill.notices.presence}, occupancy ${r.fill.notices.occupancy} (all members together)`],
  ];
  for (const c of r.checkpoints) {
    rows.push([`joins at ${c.members}`, `${c.joins} joins (${c.joinsPerSec}/s), failed ${c.failed}: ${ms(c.joinMs)}`]);
    rows.push(['  cpu', cpu(c.cost, 'join (and its leave)')]);
    rows.push(['  less idle', `server ${c.net.serverCpuUs ?? '?'} µs, Redis ${c.net.redisCpuUs ?? '?'} µs per join (background before: server ${c.idle.serverCpuPercent ?? '?'}%, Redis ${c.idle.redisCpuPercent ?? '?'}%)`]);
    rows.push(['  frames', `presence ${c.notices.presence}, occupancy ${c.notices.occupancy} to the members meanwhile`]);
  }
  const i = r.idle.cost;
  rows.push([`idle ${i.seconds} s`, [i.serverCpuPercent !== undefined ? `server CPU ${i.serverCpuPercent}%` : '', i.redisCpuPercent !== undefined ? `Redis CPU ${i.redisCpuPercent}%, ${i.redisScriptsPerSec} scripts/s, ${i.redisCommandsPerSec} commands/s` : ''].filter(Boolean).join(', ') || 'n/a']);
  rows.push(['  frames', `presence ${r.idle.notices.presence}, occupancy ${r.idle.notices.occupancy}`]);
  const m = r.memory;
  rows.push(['memory', `${m.serverRssBeforeBytes > 0 ? `server RSS ${(m.serverRssAfterBytes / 1e6).toFixed(0)} MB, ${m.serverBytesPerConnection} bytes per connection${m.serverLiveBytesPerConnection === undefined ? '' : ` (${m.serverLiveBytesPerConnection} after a full GC)`}` : 'n/a'}`
    + `${m.redisBytes !== undefined ? `; Redis +${(m.redisBytes / 1e6).toFixed(1)} MB: ${m.redisBytesPerRoom} bytes per room, ${m.redisBytesPerMembership} per member` : ''}`]);
  for (const s of r.steps) {
    rows.push([`${s.rate} msg/s`, `sent ${s.sent}, acked ${s.acked}, failed ${s.failed}, delivered ${s.delivered} (${s.deliveriesPerSec}/s)`]);
    rows.push(['  latency', `p50 ${s.latencyMs.p50} ms, p90 ${s.latencyMs.p90} ms, p99 ${s.latencyMs.p99} ms, max ${s.latencyMs.max} ms`]);
    rows.push(['  send->ack', `p50 ${s.ackLatencyMs.p50} ms, p99 ${s.ackLatencyMs.p99} ms, max ${s.ackLatencyMs.max} ms`]);
    rows.push(...transportRows(s));
    rows.push(['  integrity', `lost ${s.lost}, duplicated ${s.duplicates}, reordered ${s.reordered}, errors ${s.errors}`]);
    rows.push(['  cpu', [s.serverCpuUsPerDelivery !== undefined ? `server ${s.serverCpuPercent}% = ${s.serverCpuUsPerDelivery} µs per delivery` : '',
      s.redis ? `Redis ${s.redis.cpuPercent}% = ${s.redis.cpuUsPerDelivery} µs per delivery, ${s.redis.scriptsPerMessage} scripts and ${s.redis.commandsPerMessage} commands per message` : '',
      `loadgen ${s.loadgenCpuPercent}%`].filter(Boolean).join('; ')]);
  }
  rows.push(['verdict', r.ok ? 'OK' : 'FAILED']);
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n');
}

/** A mixed run's step, one row per transport. */
export function transportRows(s: StepResult): Array<[string, string]> {
  return Object.entries(s.transports ?? {}).map(([transport, t]) => [`  ${transport}`,
    `delivered ${t.delivered} (${t.deliveriesPerSec}/s): p50 ${t.latencyMs.p50} ms, p99 ${t.latencyMs.p99} ms; sent ${t.sent}, acked ${t.acked}, failed ${t.failed}: send->ack p50 ${t.ackLatencyMs.p50} ms, p99 ${t.ackLatencyMs.p99} ms`]);
}

function quantiles(h: Histogram): Latency {
  return { p50: round(h.quantileMs(0.5)), p99: round(h.quantileMs(0.99)), max: round(h.max) };
}

function add(into: Usage, u: Usage): void {
  into.seconds += u.seconds;
  if (u.serverCpuSeconds !== undefined) into.serverCpuSeconds = (into.serverCpuSeconds ?? 0) + u.serverCpuSeconds;
  if (u.redis) {
    const r = (into.redis ??= { cpuSeconds: 0, scripts: 0, commands: 0, memoryBytes: 0 });
    r.cpuSeconds += u.redis.cpuSeconds;
    r.scripts += u.redis.scripts;
    r.commands += u.redis.commands;
    r.memoryBytes += u.redis.memoryBytes;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
