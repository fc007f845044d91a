import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpuSeconds as processCpuSeconds } from '@chat/proc';
import { fileURLToPath } from 'node:url';
import { Histogram } from './histogram.js';
import type { Counters, FinalReport, Tick, WorkerCommand, WorkerMessage, WorkerPlan } from './plan.js';
import type { TransportName } from './transport.js';

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
  /** Server processes on this machine whose CPU each step reports (Linux /proc). */
  serverPids: number[];
  /** Users of the client library: keyed sends, resent after reconnects; loss is counted per message, not per gap. */
  resend: boolean;
  /** While sending, every `everySeconds` send SIGHUP to `pid` (npm run cluster rolls its gateways on it). */
  roll?: { pid: number; everySeconds: number };
  progress: (line: string) => void;
}

export interface StepResult {
  rate: number;
  seconds: number;
  sent: number;
  acked: number;
  failed: number;
  delivered: number;
  deliveriesPerSec: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number };
  lost: number;
  duplicates: number;
  reordered: number;
  errors: number;
  reconnects: number;
  loadgenCpuPercent: number;
  /** CPU of --server-pid processes while sending, in % of one core, and per delivered message. */
  serverCpuPercent?: number;
  serverCpuUsPerDelivery?: number;
  ok: boolean;
}

export interface LoadReport {
  scenario: Scenario;
  transport: TransportName;
  urls: string[];
  clients: number;
  connected: number;
  connectMs: { p50: number; p99: number; max: number };
  serverMemory?: { beforeBytes: number; afterBytes: number; bytesPerConnection: number };
  steps: StepResult[];
  /** find-max: the highest step that kept p99 under the bound with nothing lost. */
  best?: StepResult;
  ok: boolean;
}

const workerEntry = fileURLToPath(new URL('./worker.js', import.meta.url));
const DRAIN_MS = 2000;

class Workers {
  readonly #procs: ChildProcess[] = [];
  readonly #listeners = new Set<(message: WorkerMessage, index: number) => void>();

  constructor(count: number) {
    for (let i = 0; i < count; i++) {
      const proc = fork(workerEntry, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      proc.on('message', (message: WorkerMessage) => {
        for (const listener of this.#listeners) listener(message, i);
      });
      this.#procs.push(proc);
    }
  }

  on(listener: (message: WorkerMessage, index: number) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  send(command: WorkerCommand, index?: number): void {
    for (const [i, proc] of this.#procs.entries()) if (index === undefined || i === index) proc.send(command);
  }

  /** Resolves with one message of `type` from every worker. */
  collect<T extends WorkerMessage['type']>(type: T, timeoutMs: number): Promise<Array<Extract<WorkerMessage, { type: T }>>> {
    return new Promise((resolve, reject) => {
      const got: Array<Extract<WorkerMessage, { type: T }>> = [];
      const timer = setTimeout(() => { off(); reject(new Error(`workers did not report ${type} within ${timeoutMs} ms`)); }, timeoutMs);
      const off = this.on((message) => {
        if (message.type === 'error') { clearTimeout(timer); off(); reject(new Error(message.message)); return; }
        if (message.type !== type) return;
        got.push(message as Extract<WorkerMessage, { type: T }>);
        if (got.length === this.#procs.length) { clearTimeout(timer); off(); resolve(got); }
      });
    });
  }

  /** Asks every worker for its final report. */
  request(type: 'final'): Promise<Array<Extract<WorkerMessage, { type: 'final' }>>> {
    const answers = this.collect(type, 30_000);
    this.send({ type });
    return answers;
  }

  async exit(): Promise<void> {
    this.send({ type: 'exit' });
    await Promise.all(this.#procs.map((p) => new Promise((r) => (p.exitCode !== null ? r(null) : p.once('exit', r)))));
  }
}

/** Sums worker ticks; prints one progress line a second. */
class Progress {
  connected = new Map<number, number>();
  window = emptyCounters();
  windowLatency = new Histogram();
  total = emptyCounters();
  totalLatency = new Histogram();
  cpu = new Map<number, number>();
  /** worker -> cpu% of each tick since the last reset */
  cpuSamples = new Map<number, number[]>();
  #started = Date.now();

  add(tick: Tick, worker: number): void {
    this.connected.set(worker, tick.connected);
    this.cpu.set(worker, tick.cpuPercent);
    if (!this.cpuSamples.has(worker)) this.cpuSamples.set(worker, []);
    this.cpuSamples.get(worker)!.push(tick.cpuPercent);
    addCounters(this.window, tick.counters);
    addCounters(this.total, tick.counters);
    this.windowLatency.merge(tick.latency);
    this.totalLatency.merge(tick.latency);
  }

  line(): string {
    const c = this.window;
    const lat = this.windowLatency;
    const out = `[${String(Math.round((Date.now() - this.#started) / 1000)).padStart(3)}s] conn ${sum(this.connected)} | sent ${c.sent}/s `
      + `| delivered ${c.delivered}/s | p50 ${lat.quantileMs(0.5).toFixed(1)} ms p99 ${lat.quantileMs(0.99).toFixed(1)} ms `
      + `| lost ${c.lost} dup ${c.duplicates} reord ${c.reordered} | errors ${c.errors + c.failed} | loadgen cpu ${sum(this.cpu).toFixed(0)}%`;
    this.window = emptyCounters();
    this.windowLatency = new Histogram();
    return out;
  }

  reset(): void {
    this.total = emptyCounters();
    this.totalLatency = new Histogram();
    this.cpuSamples.clear();
  }

  /** Mean CPU of all workers together since the last reset, in % of one core. */
  meanCpu(): number {
    let total = 0;
    for (const samples of this.cpuSamples.values()) total += samples.reduce((a, b) => a + b, 0) / Math.max(1, samples.length);
    return total;
  }
}

export async function runLoad(options: LoadOptions): Promise<LoadReport> {
  const workers = new Workers(options.workers);
  const progress = new Progress();
  workers.on((message, index) => {
    if (message.type === 'tick') progress.add(message, index);
  });
  const ticker = setInterval(() => options.progress(progress.line()), 1000);
  try {
    const memoryBefore = await serverMemory(options.metricsUrls);
    const plans = planWorkers(options);
    plans.forEach((plan, i) => workers.send({ type: 'start', plan }, i));
    await workers.collect('ready', 60_000 + (options.ramp > 0 ? (options.clients / options.ramp) * 1000 : options.clients * 5));
    const memoryAfter = await serverMemory(options.metricsUrls);
    const connected = sum(progress.connected) || options.clients;
    const steps: StepResult[] = [];

    if (options.scenario === 'connect') {
      progress.reset();
      await sleep(options.duration * 1000);
      steps.push(stepResult(0, options.duration, progress, options, 0));
    } else if (!options.findMax) {
      steps.push(await runStep(workers, progress, options, options.rate, options.duration));
    } else {
      let rate = options.rate;
      for (let i = 0; i < options.maxSteps; i++) {
        const step = await runStep(workers, progress, options, rate, options.stepSeconds);
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
    };
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

async function runStep(workers: Workers, progress: Progress, options: LoadOptions, rate: number, seconds: number): Promise<StepResult> {
  progress.reset();
  const started = Date.now();
  const cpuBefore = cpuSeconds(options.serverPids);
  workers.send({ type: 'rate', perSender: rate / Math.max(1, options.senders) });
  const roller = options.roll && setInterval(() => rollGateways(options.roll!.pid, options.progress), options.roll.everySeconds * 1000);
  await sleep(seconds * 1000);
  clearInterval(roller || undefined);
  workers.send({ type: 'stop-sending' });
  const sendingSeconds = (Date.now() - started) / 1000;
  await sleep(DRAIN_MS);
  const serverCpu = cpuSeconds(options.serverPids) - cpuBefore; // sending plus the drain: all of the step's deliveries
  const finals = (await workers.request('final')).map((f) => f.report);
  await sleep(50); // the final tick of each worker arrives with its report
  const step = stepResult(rate, sendingSeconds, progress, options, tailLoss(finals));
  if (options.serverPids.length > 0) {
    step.serverCpuPercent = Math.round((serverCpu / ((Date.now() - started) / 1000)) * 100);
    step.serverCpuUsPerDelivery = round((serverCpu / Math.max(1, step.delivered)) * 1e6);
  }
  return step;
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
function tailLoss(finals: FinalReport[]): number {
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

function stepResult(rate: number, seconds: number, progress: Progress, options: LoadOptions, tail: number): StepResult {
  const c = progress.total;
  const lat = progress.totalLatency;
  const latencyMs = { p50: round(lat.quantileMs(0.5)), p90: round(lat.quantileMs(0.9)), p99: round(lat.quantileMs(0.99)), max: round(lat.max) };
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
    lost,
    duplicates: c.duplicates,
    reordered: c.reordered,
    errors: c.errors,
    reconnects: c.reconnects,
    loadgenCpuPercent: Math.round(progress.meanCpu()),
    ok: clean && (!options.findMax || latencyMs.p99 <= options.maxP99Ms),
  };
}

/** Spreads clients over rooms, URLs and workers; the first `senders` clients also send. */
export function planWorkers(options: LoadOptions): WorkerPlan[] {
  // Rooms of their own per run: history left by an earlier run must not count as this run's traffic.
  const run = Math.random().toString(36).slice(2, 8);
  const plans: WorkerPlan[] = Array.from({ length: options.workers }, () => ({
    transport: options.transport,
    urls: options.urls,
    clients: [],
    rampPerSec: options.ramp / options.workers,
    join: options.scenario !== 'connect',
    size: options.size,
    churnPerSec: options.scenario === 'churn' ? options.churn : 0,
    checkRoomOrder: options.transport === 'chat',
    localAddresses: options.localAddresses,
    resend: options.resend,
  }));
  for (let i = 0; i < options.clients; i++) {
    // Client i is member number k of room r; shifting by r spreads every room, and the
    // senders (k = 0), over all URLs whatever the numbers of rooms and URLs.
    const r = i % options.rooms;
    const k = Math.floor(i / options.rooms);
    plans[i % options.workers]!.clients.push({
      index: i,
      room: `load-${run}-${r}`,
      url: options.urls[(k + r) % options.urls.length]!,
      sender: i < options.senders,
    });
  }
  return plans;
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

function emptyCounters(): Counters {
  return { sent: 0, acked: 0, failed: 0, delivered: 0, lost: 0, duplicates: 0, reordered: 0, errors: 0, reconnects: 0 };
}

function addCounters(into: Counters, from: Counters): void {
  for (const key of Object.keys(into) as Array<keyof Counters>) into[key] += from[key];
}

function sum(values: Map<number, number>): number {
  let total = 0;
  for (const v of values.values()) total += v;
  return total;
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
