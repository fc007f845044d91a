import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Histogram } from './histogram.js';
import { emptyCounters, type Counters, type Tick, type WorkerCommand, type WorkerMessage } from './plan.js';
import type { ClientTransport, TransportName } from './transport.js';

const workerEntry = fileURLToPath(new URL('./worker.js', import.meta.url));

/** A process may hold at most 20,000 open files here: a worker holds at most this many connections. */
export const CONNECTIONS_PER_WORKER = 18_000;

/**
 * The same for a run's transport: an event-stream client also holds POST
 * connections (at most POST_SOCKETS_PER_GATEWAY per gateway, shared by its worker).
 */
export function connectionsPerWorker(transport: TransportName): number {
  return transport === 'sse' || transport === 'mixed' ? 16_000 : CONNECTIONS_PER_WORKER;
}

/** One transport's share of a step (mixed runs). */
export interface TransportTotals {
  sent: number;
  acked: number;
  failed: number;
  delivered: number;
  latency: Histogram;
  ackLatency: Histogram;
}

/** The worker processes of a run, driven over IPC. */
export class Workers {
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

  get count(): number {
    return this.#procs.length;
  }

  on(listener: (message: WorkerMessage, index: number) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  send(command: WorkerCommand, index?: number): void {
    for (const [i, proc] of this.#procs.entries()) if (index === undefined || i === index) proc.send(command);
  }

  /** Resolves with one message of `type` from each of `from` workers (default: every worker). */
  collect<T extends WorkerMessage['type']>(type: T, timeoutMs: number, from = this.#procs.length): Promise<Array<Extract<WorkerMessage, { type: T }>>> {
    return new Promise((resolve, reject) => {
      const got: Array<Extract<WorkerMessage, { type: T }>> = [];
      const timer = setTimeout(() => { off(); reject(new Error(`workers did not report ${type} within ${timeoutMs} ms`)); }, timeoutMs);
      const off = this.on((message) => {
        if (message.type === 'error') { clearTimeout(timer); off(); reject(new Error(message.message)); return; }
        if (message.type !== type) return;
        got.push(message as Extract<WorkerMessage, { type: T }>);
        if (got.length === from) { clearTimeout(timer); off(); resolve(got); }
      });
    });
  }

  /** Asks every worker for its final report. */
  request(type: 'final'): Promise<Array<Extract<WorkerMessage, { type: 'final' }>>> {
    const answers = this.collect(type, 30_000);
    this.send({ type });
    return answers;
  }

  /** Every worker's counts so far have reached the listeners (its tick comes before its answer). */
  async flush(): Promise<void> {
    const answers = this.collect('flushed', 30_000);
    this.send({ type: 'flush' });
    await answers;
  }

  async exit(): Promise<void> {
    this.send({ type: 'exit' });
    await Promise.all(this.#procs.map((p) => new Promise((r) => (p.exitCode !== null ? r(null) : p.once('exit', r)))));
  }
}

/** Sums worker ticks; prints one progress line a second. */
export class Progress {
  connected = new Map<number, number>();
  window = emptyCounters();
  windowLatency = new Histogram();
  total = emptyCounters();
  totalLatency = new Histogram();
  totalJoinLatency = new Histogram();
  totalAckLatency = new Histogram();
  /** A mixed run: per transport since the last reset, and each worker's connections per transport now. */
  totalTransports = new Map<ClientTransport, TransportTotals>();
  connectedByTransport = new Map<number, Partial<Record<ClientTransport, number>>>();
  cpu = new Map<number, number>();
  /** worker -> [cpu%, ms measured over] of each tick since the last reset */
  cpuSamples = new Map<number, Array<[number, number]>>();
  #started = Date.now();

  add(tick: Tick, worker: number): void {
    this.connected.set(worker, tick.connected);
    this.cpu.set(worker, tick.cpuPercent);
    if (!this.cpuSamples.has(worker)) this.cpuSamples.set(worker, []);
    this.cpuSamples.get(worker)!.push([tick.cpuPercent, tick.elapsedMs]);
    addCounters(this.window, tick.counters);
    addCounters(this.total, tick.counters);
    this.windowLatency.merge(tick.latency);
    this.totalLatency.merge(tick.latency);
    this.totalJoinLatency.merge(tick.joinLatency);
    if (tick.ackLatency) this.totalAckLatency.merge(tick.ackLatency);
    if (tick.transports) {
      const connected: Partial<Record<ClientTransport, number>> = {};
      for (const [transport, t] of Object.entries(tick.transports) as Array<[ClientTransport, NonNullable<Tick['transports']>[ClientTransport]]>) {
        if (t === undefined) continue;
        connected[transport] = t.connected;
        let total = this.totalTransports.get(transport);
        if (total === undefined) this.totalTransports.set(transport, (total = { sent: 0, acked: 0, failed: 0, delivered: 0, latency: new Histogram(), ackLatency: new Histogram() }));
        total.sent += t.sent;
        total.acked += t.acked;
        total.failed += t.failed;
        total.delivered += t.delivered;
        total.latency.merge(t.latency);
        total.ackLatency.merge(t.ackLatency);
      }
      this.connectedByTransport.set(worker, connected);
    }
  }

  line(): string {
    const c = this.window;
    const lat = this.windowLatency;
    const joins = c.joins > 0 ? ` | joins ${c.joins}/s` : '';
    const notices = c.presence + c.occupancy > 0 ? ` | presence ${c.presence}/s occupancy ${c.occupancy}/s` : '';
    const out = `[${String(Math.round((Date.now() - this.#started) / 1000)).padStart(3)}s] conn ${this.connectedNow()}${joins} | sent ${c.sent}/s `
      + `| delivered ${c.delivered}/s | p50 ${lat.quantileMs(0.5).toFixed(1)} ms p99 ${lat.quantileMs(0.99).toFixed(1)} ms `
      + `| lost ${c.lost} dup ${c.duplicates} reord ${c.reordered} | errors ${c.errors + c.failed}${notices} | loadgen cpu ${sum(this.cpu).toFixed(0)}%`;
    this.window = emptyCounters();
    this.windowLatency = new Histogram();
    return out;
  }

  connectedNow(): number {
    return sum(this.connected);
  }

  /** A mixed run: connections per transport now, all workers together. */
  connectedPerTransport(): Partial<Record<ClientTransport, number>> {
    const out: Partial<Record<ClientTransport, number>> = {};
    for (const byWorker of this.connectedByTransport.values()) {
      for (const [t, n] of Object.entries(byWorker) as Array<[ClientTransport, number]>) out[t] = (out[t] ?? 0) + n;
    }
    return out;
  }

  reset(): void {
    this.total = emptyCounters();
    this.totalLatency = new Histogram();
    this.totalJoinLatency = new Histogram();
    this.totalAckLatency = new Histogram();
    this.totalTransports.clear();
    this.cpuSamples.clear();
  }

  /** Mean CPU of all workers together since the last reset, in % of one core (each tick weighed by its span). */
  meanCpu(): number {
    let total = 0;
    for (const samples of this.cpuSamples.values()) {
      const ms = samples.reduce((a, [, m]) => a + m, 0);
      total += samples.reduce((a, [cpu, m]) => a + cpu * m, 0) / Math.max(1, ms);
    }
    return total;
  }
}

export { emptyCounters, type Counters };

function addCounters(into: Counters, from: Counters): void {
  for (const key of Object.keys(into) as Array<keyof Counters>) into[key] += from[key] ?? 0;
}

function sum(values: Map<number, number>): number {
  let total = 0;
  for (const v of values.values()) total += v;
  return total;
}
