import { cpuSeconds as processCpuSeconds } from '@chat/proc';
import { Histogram } from './histogram.js';
import { cost, Meter, type Cost } from './meter.js';
import type { FinalReport, WorkerPlan } from './plan.js';
import type { ClientTransport, TransportName } from './transport.js';
import { connectionsPerWorker, Progress, Workers } from './workers.js';

export type Scenario = 'connect' | 'fanout' | 'churn';

export interface LoadOptions {
  scenario: Scenario;
  transport: TransportName;
  urls: string[];
  /** connect: connections to open. fanout/churn: rooms × members. */
  clients: number;
  rooms: number;
  senders: number;
  /** Messages per second, all senders together. */
  rate: number;
  size: number;
  /** Seconds of sending (fanout, churn) or holding (connect). */
  duration: number;
  /** Connections opened per second, all workers together (0: as fast as possible). */
  ramp: number;
  workers: number;
  /** Fraction of receivers reconnecting per second (churn). */
  churn: number;
  findMax: boolean;
  maxP99Ms: number;
  stepSeconds: number;
  stepFactor: number;
  maxSteps: number;
  /** /metrics URLs of the servers, to measure their memory per connection. */
  metricsUrls: string[];
  localAddresses: string[];
  /** SSE clients POST to another gateway than their stream's (always relayed). */
  sseRelay?: boolean;
  /** Server processes on this machine whose CPU each step reports (Linux /proc). */
  serverPids: number[];
  /** Redis servers whose CPU, scripts and commands each step reports per delivery (INFO). */
  redisUrls?: string[];
  /**
   * Inspector ports of the server processes (`--inspect`): with `serverPids`, their RSS after a full GC
   * before and after the clients connect, per connection (`serverLiveMemory`).
   */
  gcInspectorPorts?: number[];
  /** Users of the client library: keyed sends, resent after reconnects; loss is counted per message, not per gap. */
  resend: boolean;
  /** While sending, every `everySeconds` send SIGHUP to `pid` (npm run cluster rolls its gateways on it). */
  roll?: { pid: number; everySeconds: number };
  progress: (line: string) => void;
}

export interface StepResult extends TransportStep {
  rate: number;
  seconds: number;
  /**
   * A mixed run: each transport's share: deliveries by the receiver's transport, sends and acks by
   * the sender's. CPU cannot be split so: run each transport alone for CPU per delivery.
   */
  transports?: Partial<Record<ClientTransport, TransportStep>>;
  lost: number;
  duplicates: number;
  reordered: number;
  errors: number;
  reconnects: number;
  loadgenCpuPercent: number;
  /** CPU of --server-pid processes while sending, in % of one core, and per delivered message. */
  serverCpuPercent?: number;
  serverCpuUsPerDelivery?: number;
  /** The CPU window (sending plus the drain) and the servers' CPU seconds in it, unrounded. */
  cpuWindowSeconds?: number;
  serverCpuSeconds?: number;
  /** With Redis to read (big-room, many-rooms --redis-url): its CPU, scripts and commands over the step, per delivery and per message. */
  redis?: { cpuPercent: number; cpuSeconds: number; cpuUsPerDelivery: number; scriptsPerSec: number; scriptsPerMessage: number; commandsPerMessage: number };
  /** presence and occupancy frames members received during the step. */
  notices?: { presence: number; occupancy: number };
  ok: boolean;
}

export interface Quantiles { p50: number; p90: number; p99: number; max: number }

/** What a step measured of its sends and deliveries: the whole step's, or one transport's share of a mixed one. */
export interface TransportStep {
  sent: number;
  acked: number;
  failed: number;
  delivered: number;
  deliveriesPerSec: number;
  latencyMs: Quantiles;
  /** From a send leaving its client (written, or queued for its POST) to its ack. */
  ackLatencyMs: Quantiles;
}

export interface LoadReport {
  scenario: Scenario;
  transport: TransportName;
  urls: string[];
  clients: number;
  connected: number;
  connectMs: { p50: number; p99: number; max: number };
  serverMemory?: { beforeBytes: number; afterBytes: number; bytesPerConnection: number };
  /** With --server-pid and --gc-inspector: the servers' RSS after a full GC, before and after the clients connected. */
  serverLiveMemory?: { beforeBytes: number; afterBytes: number; bytesPerConnection: number };
  /** A mixed run: connections per transport once every client had connected. */
  connectedByTransport?: Partial<Record<ClientTransport, number>>;
  steps: StepResult[];
  /** find-max: the highest step that kept p99 under the bound with nothing lost. */
  best?: StepResult;
  ok: boolean;
}

const DRAIN_MS = 2000;

export async function runLoad(options: LoadOptions): Promise<LoadReport> {
  const workers = new Workers(Math.max(options.workers, Math.ceil(options.clients / connectionsPerWorker(options.transport))));
  const progress = new Progress();
  workers.on((message, index) => {
    if (message.type === 'tick') progress.add(message, index);
  });
  const ticker = setInterval(() => options.progress(progress.line()), 1000);
  const redisUrls = options.redisUrls ?? [];
  const meter = new Meter(options.serverPids, redisUrls, options.serverPids.length > 0 ? options.gcInspectorPorts ?? [] : []);
  try {
    const memoryBefore = await serverMemory(options.metricsUrls);
    const liveBefore = await meter.serverRssAfterGc();
    const plans = planWorkers({ ...options, workers: workers.count });
    const started = workers.collect('started', 60_000);
    plans.forEach((plan, i) => workers.send({ type: 'start', plan }, i));
    await started;
    const ready = workers.collect('ready', 60_000 + (options.ramp > 0 ? (options.clients / options.ramp) * 1000 : options.clients * 5));
    workers.send({ type: 'open', upTo: Number.MAX_SAFE_INTEGER });
    await ready;
    await workers.flush();
    const memoryAfter = await serverMemory(options.metricsUrls);
    const liveAfter = await meter.serverRssAfterGc();
    const connected = progress.connectedNow() || options.clients;
    const connectedByTransport = options.transport === 'mixed' ? progress.connectedPerTransport() : undefined;
    const stepMeter = redisUrls.length > 0 ? meter : undefined;
    const steps: StepResult[] = [];

    if (options.scenario === 'connect') {
      progress.reset();
      await sleep(options.duration * 1000);
      steps.push(stepResult(0, options.duration, progress, options, 0));
    } else if (!options.findMax) {
      steps.push(await runStep(workers, progress, options, options.rate, options.duration, stepMeter));
    } else {
      let rate = options.rate;
      for (let i = 0; i < options.maxSteps; i++) {
        const step = await runStep(workers, progress, options, rate, options.stepSeconds, stepMeter);
        steps.push(step);
        options.progress(`step ${i + 1}: ${rate.toFixed(0)} msg/s -> ${step.deliveriesPerSec.toFixed(0)} deliveries/s, p99 ${step.latencyMs.p99.toFixed(1)} ms, ${step.ok ? 'ok' : 'over the bound'}`);
        if (!step.ok) break;
        rate *= options.stepFactor;
      }
    }

    const connect = new Histogram();
    for (const final of await workers.request('final')) connect.merge(final.report.connect);
    const best = options.findMax ? [...steps].filter((s) => s.ok).sort((a, b) => b.deliveriesPerSec - a.deliveriesPerSec)[0] : undefined;
    const report: LoadReport = {
      scenario: options.scenario,
      transport: options.transport,
      urls: options.urls,
      clients: options.clients,
      connected,
      connectMs: { p50: round(connect.quantileMs(0.5)), p99: round(connect.quantileMs(0.99)), max: round(connect.max) },
      steps,
      ok: options.findMax ? best !== undefined && steps.every((s) => s.lost + s.duplicates + s.reordered === 0) : steps.every((s) => s.ok),
      ...(best && { best }),
      ...(connectedByTransport && { connectedByTransport }),
    };
    if (liveBefore !== undefined && liveAfter !== undefined) {
      report.serverLiveMemory = { beforeBytes: liveBefore, afterBytes: liveAfter, bytesPerConnection: Math.round((liveAfter - liveBefore) / Math.max(1, connected)) };
    }
    if (memoryBefore !== undefined && memoryAfter !== undefined) {
      report.serverMemory = {
        beforeBytes: memoryBefore,
        afterBytes: memoryAfter,
        bytesPerConnection: Math.round((memoryAfter - memoryBefore) / Math.max(1, connected)),
      };
    }
    return report;
  } finally {
    clearInterval(ticker);
    await workers.exit();
  }
}

/**
 * Sends at `rate` messages/s for `seconds`, waits for the last deliveries, and
 * reports the step. With a `meter`, Redis's share is measured over the same window.
 */
export async function runStep(workers: Workers, progress: Progress, options: StepOptions, rate: number, seconds: number, meter?: Meter): Promise<StepResult> {
  await workers.flush();
  progress.reset();
  const mark = await meter?.mark();
  const started = Date.now();
  const cpuBefore = cpuSeconds(options.serverPids);
  workers.send({ type: 'rate', perSender: rate / Math.max(1, options.senders) });
  const roller = options.roll && setInterval(() => rollGateways(options.roll!.pid, options.progress), options.roll.everySeconds * 1000);
  await sleep(seconds * 1000);
  clearInterval(roller || undefined);
  workers.send({ type: 'stop-sending' });
  const sendingSeconds = (Date.now() - started) / 1000;
  await sleep(DRAIN_MS);
  if (options.drainUntilQuiet) await quiet(workers, progress);
  const serverCpu = cpuSeconds(options.serverPids) - cpuBefore; // sending plus the drain: all of the step's deliveries
  const usage = mark && await meter!.since(mark);
  const finals = (await workers.request('final')).map((f) => f.report); // each worker's last tick comes before its report
  const step = stepResult(rate, sendingSeconds, progress, options, tailLoss(finals));
  if (options.serverPids.length > 0) {
    const windowSeconds = (Date.now() - started) / 1000;
    step.serverCpuPercent = Math.round((serverCpu / windowSeconds) * 100);
    step.serverCpuUsPerDelivery = round((serverCpu / Math.max(1, step.delivered)) * 1e6);
    step.cpuWindowSeconds = Math.round(windowSeconds * 1000) / 1000;
    step.serverCpuSeconds = Math.round(serverCpu * 1000) / 1000;
  }
  if (usage?.redis) {
    const perDelivery: Cost = cost(usage, step.delivered);
    const perMessage = cost(usage, step.acked);
    step.redis = {
      cpuPercent: perDelivery.redisCpuPercent!, cpuSeconds: usage.redis.cpuSeconds, cpuUsPerDelivery: perDelivery.redisCpuUs!, scriptsPerSec: perDelivery.redisScriptsPerSec!,
      scriptsPerMessage: perMessage.redisScriptsPer!, commandsPerMessage: perMessage.redisCommandsPer!,
    };
  }
  const { presence, occupancy } = progress.total;
  if (presence + occupancy > 0) step.notices = { presence, occupancy };
  return step;
}

/**
 * What a step needs to know of the run. drainUntilQuiet: after the usual drain, wait
 * (up to MAX_DRAIN_MS more) until deliveries stop arriving, so that a load generator
 * that fell behind counts late deliveries as late, not as lost.
 */
export type StepOptions = Pick<LoadOptions, 'senders' | 'serverPids' | 'findMax' | 'maxP99Ms' | 'roll' | 'progress'> & { drainUntilQuiet?: boolean };

const MAX_DRAIN_MS = 30_000;

async function quiet(workers: Workers, progress: Progress): Promise<void> {
  const until = Date.now() + MAX_DRAIN_MS;
  for (;;) {
    await workers.flush();
    const delivered = progress.total.delivered;
    if (Date.now() > until) return;
    await sleep(500);
    await workers.flush();
    if (progress.total.delivered === delivered) return;
  }
}

function rollGateways(pid: number, progress: (line: string) => void): void {
  try {
    process.kill(pid, 'SIGHUP');
    progress(`asked ${pid} to roll its gateways (SIGHUP)`);
  } catch (err) {
    progress(`cannot signal ${pid}: ${String(err)}`);
  }
}

/**
 * Acknowledged messages that some member of the sender's room never got, past
 * the last one it did get: losses no later message revealed as a gap. In resend
 * mode, every acknowledged message some member of the room never got.
 */
export function tailLoss(finals: FinalReport[]): number {
  if (finals.some((f) => f.resend !== undefined)) return resendLoss(finals);
  const maxAcked: Record<string, number> = {};
  const senderRooms: Record<string, string> = {};
  const receivers: Record<string, number> = {};
  const seen: Record<string, number[]> = {};
  for (const f of finals) {
    Object.assign(maxAcked, f.maxAcked);
    Object.assign(senderRooms, f.senderRooms);
    for (const [room, n] of Object.entries(f.receiversByRoom)) receivers[room] = (receivers[room] ?? 0) + n;
    for (const [sender, last] of Object.entries(f.lastSeen)) (seen[sender] ??= []).push(...last);
  }
  let lost = 0;
  for (const [sender, acked] of Object.entries(maxAcked)) {
    const lasts = seen[sender] ?? [];
    for (const last of lasts) lost += Math.max(0, acked - last);
    lost += acked * Math.max(0, (receivers[senderRooms[sender]!] ?? 0) - lasts.length);
  }
  return lost;
}

function resendLoss(finals: FinalReport[]): number {
  const acked: Record<string, Array<[number, number]>> = {};
  const senderRooms: Record<string, string> = {};
  const receivers: Record<string, number> = {};
  const received: Record<string, Array<Array<[number, number]>>> = {};
  for (const f of finals) {
    Object.assign(acked, f.resend!.acked);
    Object.assign(senderRooms, f.senderRooms);
    for (const [room, n] of Object.entries(f.receiversByRoom)) receivers[room] = (receivers[room] ?? 0) + n;
    for (const [sender, runs] of Object.entries(f.resend!.received)) (received[sender] ??= []).push(...runs);
  }
  let lost = 0;
  for (const [sender, runs] of Object.entries(acked)) {
    const ackedSeqs = runs.flatMap(([a, b]) => Array.from({ length: b - a + 1 }, (_, i) => a + i));
    const heard = received[sender] ?? [];
    for (const got of heard) {
      const has = (seq: number) => got.some(([a, b]) => seq >= a && seq <= b);
      lost += ackedSeqs.filter((seq) => !has(seq)).length;
    }
    lost += ackedSeqs.length * Math.max(0, (receivers[senderRooms[sender]!] ?? 0) - heard.length);
  }
  return lost;
}

function stepResult(rate: number, seconds: number, progress: Progress, options: Pick<LoadOptions, 'findMax' | 'maxP99Ms'>, tail: number): StepResult {
  const c = progress.total;
  const lat = progress.totalLatency;
  const latencyMs = quantiles(lat);
  const lost = c.lost + tail;
  const clean = lost + c.duplicates + c.reordered === 0;
  return {
    rate,
    seconds: round(seconds),
    sent: c.sent,
    acked: c.acked,
    failed: c.failed,
    delivered: c.delivered,
    deliveriesPerSec: Math.round(c.delivered / Math.max(seconds, 0.001)),
    latencyMs,
    ackLatencyMs: quantiles(progress.totalAckLatency),
    ...(progress.totalTransports.size > 0 && {
      transports: Object.fromEntries([...progress.totalTransports].map(([transport, t]) => [transport, {
        sent: t.sent, acked: t.acked, failed: t.failed, delivered: t.delivered, deliveriesPerSec: Math.round(t.delivered / Math.max(seconds, 0.001)),
        latencyMs: quantiles(t.latency), ackLatencyMs: quantiles(t.ackLatency),
      } satisfies TransportStep])),
    }),
    lost,
    duplicates: c.duplicates,
    reordered: c.reordered,
    errors: c.errors,
    reconnects: c.reconnects,
    loadgenCpuPercent: Math.round(progress.meanCpu()),
    ok: clean && (!options.findMax || latencyMs.p99 <= options.maxP99Ms),
  };
}

function quantiles(h: Histogram): Quantiles {
  return { p50: round(h.quantileMs(0.5)), p90: round(h.quantileMs(0.9)), p99: round(h.quantileMs(0.99)), max: round(h.max) };
}

/**
 * A mixed run: the transport of the client at position `j` of a URL rotation over
 * `urls` URLs (it goes to URL j mod urls). Alternates with j, flipped every
 * lcm(urls, 2) positions, so that consecutive clients (a room's members) are on
 * both transports, every URL gets both, and clients every so many positions
 * apart (the rooms' senders) are too: about half the senders on each.
 */
export function mixedTransport(j: number, urls: number): ClientTransport {
  const period = urls % 2 === 0 ? urls : 2 * urls;
  return (j + Math.floor(j / period)) % 2 === 0 ? 'ws' : 'sse';
}

const other = (t: ClientTransport): ClientTransport => (t === 'ws' ? 'sse' : 'ws');

/** Spreads clients over rooms, URLs and workers; the first `senders` clients also send. */
export function planWorkers(options: LoadOptions): WorkerPlan[] {
  // Rooms of their own per run: history left by an earlier run must not count as this run's traffic.
  const run = Math.random().toString(36).slice(2, 8);
  const plans = emptyPlans(options, options.scenario !== 'connect');
  for (let i = 0; i < options.clients; i++) {
    // Client i is member number k of room r; shifting by r spreads every room, and the
    // senders (k = 0), over all URLs whatever the numbers of rooms and URLs.
    const r = i % options.rooms;
    const k = Math.floor(i / options.rooms);
    const room = `load-${run}-${r}`;
    plans[i % options.workers]!.clients.push({
      index: i,
      rooms: [room],
      url: options.urls[(k + r) % options.urls.length]!,
      sends: i < options.senders ? [{ room, key: i }] : [],
      // Senders (k = 0) as mixedTransport says for the room; its other members alternate from there.
      ...(options.transport === 'mixed' && { transport: k % 2 === 0 ? mixedTransport(r, options.urls.length) : other(mixedTransport(r, options.urls.length)) }),
    });
  }
  return plans;
}

/** One plan per worker, with no clients yet. */
export function emptyPlans(options: Pick<LoadOptions, 'workers' | 'transport' | 'urls' | 'ramp' | 'size' | 'scenario' | 'churn' | 'localAddresses' | 'resend' | 'sseRelay'>, join: boolean): WorkerPlan[] {
  return Array.from({ length: options.workers }, () => ({
    transport: options.transport,
    urls: options.urls,
    clients: [],
    probes: [],
    rampPerSec: options.ramp / options.workers,
    join,
    size: options.size,
    churnPerSec: options.scenario === 'churn' ? options.churn : 0,
    checkRoomOrder: options.transport !== 'socketio',
    localAddresses: options.localAddresses,
    resend: options.resend,
    sseRelay: options.sseRelay ?? false,
  }));
}

async function serverMemory(urls: string[]): Promise<number | undefined> {
  if (urls.length === 0) return undefined;
  let total = 0;
  for (const url of urls) {
    const text = await (await fetch(url)).text();
    const line = text.split('\n').find((l) => l.startsWith('process_resident_memory_bytes '));
    if (line === undefined) return undefined;
    total += Number(line.split(' ')[1]);
  }
  return total;
}

/** User + system CPU seconds of processes, from /proc (0 where unreadable). */
function cpuSeconds(pids: number[]): number {
  return pids.reduce((total, pid) => total + processCpuSeconds(pid), 0);
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
