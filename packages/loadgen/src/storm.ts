import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ChatClient, type WebSocketLike } from '@chat/client';
import { cpuSeconds } from '@chat/proc';
import { compareIds } from '@chat/protocol';
import WebSocket from 'ws';
import { Histogram } from './histogram.js';
import type { NoticeCounts, StormStatus, StormVictim, StormWorkerCommand, StormWorkerMessage } from './storm-worker.js';
import { CONNECTIONS_PER_WORKER } from './workers.js';

/**
 * A reconnect storm: `clients` library users (the victims) on the gateways
 * `victimUrls` name first, chatting in `rooms` rooms, and a control group on
 * `controlUrls` chatting steadily. `disrupt` kills, drains or restarts
 * gateways; the storm is over when every victim cut off has rejoined with
 * `since`. Reports how long that took, the control group's delivery latency
 * meanwhile, and whether any victim lost or repeated a message.
 */
export interface StormOptions {
  /** Each victim's URL list: victim i gets `victimUrls[i % length]` (the first URL is where it connects). */
  victimUrls: string[][];
  /** Gateways of the control group (each member its own list, rotated). */
  controlUrls: string[];
  clients: number;
  rooms: number;
  /**
   * Members of the victims' rooms in all: the `clients` victims, and `members - clients`
   * bystanders on `controlUrls` (spread over them), which the disruption does not cut
   * off: what they see of it (presence, occupancy) is counted. Default: no bystanders.
   */
  members?: number;
  /** Gateways expected to survive: their CPU before, during and after the storm. */
  survivorPids?: number[];
  /** After every victim is back, keep watching this long (a dead gateway's users are withdrawn after the presence timeout). */
  settleMs?: number;
  /** Messages per second into the victims' rooms, all together. */
  rate: number;
  controlRooms: number;
  controlMembers: number;
  /** Messages per second in each control room. */
  controlRate: number;
  workers: number;
  /** Connections opened at once per worker while setting up. */
  batch: number;
  /** What happens: resolves when the disruption is done (the storm may go on). */
  disrupt(): Promise<void>;
  /** CPU seconds of a process (Redis) to report its share during the storm. */
  cpuSeconds?: () => number;
  /** Gives up waiting for the victims after this long. */
  timeoutMs: number;
  progress(line: string): void;
}

export interface StormReport {
  victims: number;
  affected: number;
  /** From the disruption's start until the last affected victim was back. */
  allBackMs: number | null;
  rejoinMs: { p50: number; p99: number; first: number; last: number };
  rejoinsPerSec: number;
  /** Affected victims still away when it gave up. */
  stillAway: number;
  gaps: number;
  sendFailures: number;
  lost: number;
  duplicated: number;
  reordered: number;
  controlP99Ms: { before: number; during: number };
  /** Victims per gateway once it was over. */
  nodes: Record<string, number>;
  redisCpuPercent?: number;
  /** With bystanders: room members on the other gateways, and what they received from the disruption to the end of the settle time. */
  bystanders?: number;
  notices?: { victims: NoticeCounts; bystanders: NoticeCounts; seconds: number };
  /**
   * The survivors' CPU (sum over `survivorPids`, % of one core): in the 3 s before the disruption,
   * from it until every victim was back, during the settle time, and the busiest second of all that.
   */
  survivorCpuPercent?: { before: number; during: number; settle: number | null; peak: number };
}

class Worker {
  readonly #child: ChildProcess;
  readonly #waiting = new Map<string, Array<(m: StormWorkerMessage) => void>>();

  constructor() {
    this.#child = fork(fileURLToPath(new URL('./storm-worker.js', import.meta.url)), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.#child.on('message', (m: StormWorkerMessage) => {
      if (m.type === 'error') throw new Error(`storm worker: ${m.message}`);
      this.#waiting.get(m.type)?.shift()?.(m);
    });
  }

  tell(command: StormWorkerCommand): void {
    this.#child.send(command);
  }

  ask<T extends StormWorkerMessage['type']>(command: StormWorkerCommand, answer: T): Promise<Extract<StormWorkerMessage, { type: T }>> {
    return new Promise((resolve) => {
      const list = this.#waiting.get(answer) ?? [];
      list.push(resolve as (m: StormWorkerMessage) => void);
      this.#waiting.set(answer, list);
      this.tell(command);
    });
  }
}

const webSocket = (url: string) => new WebSocket(url, { perMessageDeflate: false }) as unknown as WebSocketLike;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Senders that post into rooms at a steady rate with the client library (keyed, resent), keeping what was acked. */
class RoomTraffic {
  readonly acked = new Map<string, string[]>();
  failures = 0;
  #timer: NodeJS.Timeout | undefined;
  readonly #inFlight = new Set<Promise<unknown>>();

  constructor(private readonly senders: ChatClient[], private readonly rooms: string[], private readonly text: () => string) {
    for (const room of rooms) this.acked.set(room, []);
  }

  start(perSecond: number): void {
    let next = 0;
    const tick = 20;
    const perTick = perSecond * tick / 1000;
    let owed = 0;
    this.#timer = setInterval(() => {
      for (owed += perTick; owed >= 1; owed--) {
        const index = next++ % this.rooms.length;
        const room = this.rooms[index]!;
        const sender = this.senders[index % this.senders.length]!;
        const sending = sender.send(room, this.text()).then((ack) => this.acked.get(room)!.push(ack.id), () => { this.failures++; });
        this.#inFlight.add(sending);
        void sending.finally(() => this.#inFlight.delete(sending));
      }
    }, tick);
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await Promise.all(this.#inFlight);
    for (const list of this.acked.values()) list.sort(compareIds);
  }
}

async function connectAll(clients: ChatClient[], rooms: (i: number) => string[]): Promise<void> {
  for (let i = 0; i < clients.length; i += 200) {
    await Promise.all(clients.slice(i, i + 200).map(async (c, j) => {
      await c.connect();
      for (const room of rooms(i + j)) await c.join(room);
    }));
  }
}

export async function runStorm(o: StormOptions): Promise<StormReport> {
  const run = Math.random().toString(36).slice(2, 8); // rooms of its own: a storm leaves presence behind for the presence timeout
  const rooms = Array.from({ length: o.rooms }, (_, i) => `storm-${run}-${i}`);
  const rotate = (i: number) => [...o.controlUrls.slice(i % o.controlUrls.length), ...o.controlUrls.slice(0, i % o.controlUrls.length)];
  const victims: StormVictim[] = Array.from({ length: o.clients }, (_, i) => ({ user: `v${i}`, room: rooms[i % rooms.length]!, urls: o.victimUrls[i % o.victimUrls.length]! }));
  const bystanders: StormVictim[] = Array.from({ length: Math.max(0, (o.members ?? o.clients) - o.clients) },
    (_, i) => ({ user: `b${i}`, room: rooms[i % rooms.length]!, urls: rotate(i), bystander: true }));
  const everyone = [...victims, ...bystanders];
  const workers = Array.from({ length: Math.max(o.workers, Math.ceil(everyone.length / CONNECTIONS_PER_WORKER)) }, () => new Worker());
  o.progress(`connecting ${victims.length} victims${bystanders.length ? ` and ${bystanders.length} bystanders` : ''} in ${workers.length} workers`);
  const ready = await Promise.all(workers.map((w, i) => w.ask({ type: 'start', victims: everyone.filter((_, j) => j % workers.length === i), batch: o.batch }, 'ready')));
  o.progress(`connected: ${ready.reduce((n, r) => n + r.connected, 0)}`);

  // The victims' rooms: senders on the control gateways, 100 rooms each at most (MAX_ROOMS_PER_CONNECTION).
  const roomSenders = Array.from({ length: Math.ceil(rooms.length / 100) }, (_, i) => new ChatClient({ url: rotate(i), user: `storm-sender-${i}`, webSocket, transports: ['websocket'], queueLimit: 100_000 }));
  await connectAll(roomSenders, (i) => rooms.filter((_, r) => r % roomSenders.length === i));
  const traffic = new RoomTraffic(roomSenders, rooms, () => 'storm');

  // The control group: latency is the time from send to delivery, both here.
  const controlRooms = Array.from({ length: o.controlRooms }, (_, i) => `control-${i}`);
  const control = Array.from({ length: o.controlRooms * o.controlMembers }, (_, i) => new ChatClient({ url: rotate(i), user: `c${i}`, webSocket, transports: ['websocket'], queueLimit: 100_000 }));
  let latency = new Histogram();
  for (const c of control) c.on('message', (m) => { if (m.room.startsWith('control-')) latency.recordMs(Date.now() - Number(m.text)); });
  await connectAll(control, (i) => [controlRooms[i % controlRooms.length]!]);
  const controlSenders = controlRooms.map((_, r) => control[r]!);
  const controlTraffic = new RoomTraffic(controlSenders, controlRooms, () => String(Date.now()));

  traffic.start(o.rate);
  controlTraffic.start(o.controlRate * o.controlRooms);
  const survivors = new CpuSampler(o.survivorPids ?? []);
  await sleep(3000);
  const survivorsBefore = survivors.percentSince(0);
  const before = latency.quantileMs(0.99);
  latency = new Histogram();
  for (const w of workers) w.tell({ type: 'mark' });
  await sleep(50);
  const cpuAtStart = o.cpuSeconds?.();
  const startedAt = Date.now();
  const survivorsMark = survivors.mark();
  o.progress('disrupting');
  await o.disrupt();
  const status = async (): Promise<StormStatus> => {
    const all = await Promise.all(workers.map((w) => w.ask({ type: 'status' }, 'status')));
    const nodes: Record<string, number> = {};
    for (const s of all) for (const [node, n] of Object.entries(s.nodes)) nodes[node] = (nodes[node] ?? 0) + n;
    const group = (g: 'victims' | 'bystanders'): NoticeCounts => all.map((s) => s.notices[g]).reduce((a, b) => ({
      clients: a.clients + b.clients, presence: a.presence + b.presence, occupancy: a.occupancy + b.occupancy,
      maxPresence: Math.max(a.maxPresence, b.maxPresence), maxOccupancy: Math.max(a.maxOccupancy, b.maxOccupancy),
    }));
    return {
      type: 'status', affected: sum(all.map((s) => s.affected)), pending: sum(all.map((s) => s.pending)), gaps: sum(all.map((s) => s.gaps)),
      rejoinedAfterMs: all.flatMap((s) => s.rejoinedAfterMs), nodes, notices: { victims: group('victims'), bystanders: group('bystanders') },
    };
  };
  let last = await status();
  while ((last.affected === 0 || last.pending > 0) && Date.now() - startedAt < o.timeoutMs) {
    await sleep(100);
    last = await status();
  }
  const allBack = last.affected > 0 && last.pending === 0;
  const allBackMs = allBack ? Math.max(...last.rejoinedAfterMs) : null;
  const redisCpuPercent = cpuAtStart === undefined ? undefined : Math.round(((o.cpuSeconds!() - cpuAtStart) / Math.max(0.001, (Date.now() - startedAt) / 1000)) * 100);
  const during = latency.quantileMs(0.99);
  const survivorsDuring = survivors.percentSince(survivorsMark);
  o.progress(`back: ${last.affected - last.pending} of ${last.affected} in ${allBackMs ?? '(gave up)'} ms`);
  let survivorsSettle: number | null = null;
  if ((o.settleMs ?? 0) > 0) {
    const settleMark = survivors.mark();
    o.progress(`watching ${o.settleMs} ms more`);
    await sleep(o.settleMs!);
    survivorsSettle = survivors.percentSince(settleMark);
    last = { ...(await status()), rejoinedAfterMs: last.rejoinedAfterMs, affected: last.affected, pending: last.pending };
  }
  const noticesSeconds = (Date.now() - startedAt) / 1000;
  const survivorsPeak = survivors.peakSince(survivorsMark);
  survivors.stop();

  await sleep(1000);
  await Promise.all([traffic.stop(), controlTraffic.stop()]);
  await sleep(2000); // the last deliveries
  const acked = Object.fromEntries(traffic.acked);
  const verified = await Promise.all(workers.map((w) => w.ask({ type: 'verify', acked }, 'verified')));
  for (const w of workers) w.tell({ type: 'close' });
  for (const c of [...roomSenders, ...control]) c.close();

  const times = last.rejoinedAfterMs.sort((a, b) => a - b);
  const q = (p: number) => times[Math.min(times.length - 1, Math.floor(p * times.length))] ?? 0;
  const spanMs = (times.at(-1) ?? 0) - (times[0] ?? 0);
  return {
    victims: victims.length,
    affected: last.affected,
    allBackMs,
    rejoinMs: { p50: q(0.5), p99: q(0.99), first: times[0] ?? 0, last: times.at(-1) ?? 0 },
    rejoinsPerSec: spanMs > 0 ? Math.round(times.length / (spanMs / 1000)) : times.length,
    stillAway: last.pending,
    gaps: last.gaps,
    sendFailures: traffic.failures + controlTraffic.failures,
    lost: sum(verified.map((v) => v.lost)),
    duplicated: sum(verified.map((v) => v.duplicated)),
    reordered: sum(verified.map((v) => v.reordered)),
    controlP99Ms: { before: round(before), during: round(during) },
    nodes: last.nodes,
    ...(redisCpuPercent !== undefined && { redisCpuPercent }),
    ...(bystanders.length > 0 && { bystanders: bystanders.length }),
    notices: { ...last.notices, seconds: round(noticesSeconds) },
    ...(o.survivorPids?.length && { survivorCpuPercent: { before: survivorsBefore, during: survivorsDuring, settle: survivorsSettle, peak: survivorsPeak } }),
  };
}

/** CPU of a set of processes (from /proc), sampled every second: % of one core over a window, and its busiest second. */
class CpuSampler {
  readonly #samples: Array<{ at: number; cpu: number }> = [];
  readonly #timer: NodeJS.Timeout;

  constructor(private readonly pids: number[]) {
    this.#sample();
    this.#timer = setInterval(() => this.#sample(), 1000);
  }

  /** A mark: the sample index now (a fresh sample is taken). */
  mark(): number {
    this.#sample();
    return this.#samples.length - 1;
  }

  percentSince(mark: number): number {
    this.#sample();
    const [a, b] = [this.#samples[mark]!, this.#samples.at(-1)!];
    return Math.round(((b.cpu - a.cpu) / Math.max(0.001, (b.at - a.at) / 1000)) * 100);
  }

  peakSince(mark: number): number {
    let peak = 0;
    for (let i = mark + 1; i < this.#samples.length; i++) {
      const [a, b] = [this.#samples[i - 1]!, this.#samples[i]!];
      if (b.at - a.at >= 500) peak = Math.max(peak, ((b.cpu - a.cpu) / ((b.at - a.at) / 1000)) * 100);
    }
    return Math.round(peak);
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  #sample(): void {
    this.#samples.push({ at: performance.now(), cpu: this.pids.reduce((t, pid) => t + cpuSeconds(pid), 0) });
  }
}

export function describeStorm(r: StormReport): string {
  const n = r.notices;
  const group = (g: NoticeCounts | undefined) => (g && g.clients > 0
    ? `presence ${g.presence} (at most ${g.maxPresence} to one), occupancy ${g.occupancy} (at most ${g.maxOccupancy} to one), to ${g.clients}` : '');
  const cpu = r.survivorCpuPercent;
  return [
    `victims       ${r.affected} of ${r.victims} cut off; all back after ${r.allBackMs ?? '(not all)'} ms (p50 ${r.rejoinMs.p50} ms, p99 ${r.rejoinMs.p99} ms)`,
    `rejoins       ${r.rejoinsPerSec}/s; recovered: false ${r.gaps}; still away ${r.stillAway}; now on ${JSON.stringify(r.nodes)}`,
    `control p99   ${r.controlP99Ms.before} ms before, ${r.controlP99Ms.during} ms during${r.redisCpuPercent === undefined ? '' : `; Redis CPU ${r.redisCpuPercent}%`}`,
    `integrity     lost ${r.lost}, duplicated ${r.duplicated}, reordered ${r.reordered}, send failures ${r.sendFailures}`,
    ...(n && r.bystanders ? [`bystanders    ${group(n.bystanders)} in ${n.seconds} s from the disruption`] : []),
    ...(n && n.victims.presence + n.victims.occupancy > 0 ? [`victims got   ${group(n.victims)}`] : []),
    ...(cpu ? [`survivors cpu ${cpu.before}% before, ${cpu.during}% until all back${cpu.settle === null ? '' : `, ${cpu.settle}% while settling`}; busiest second ${cpu.peak}%`] : []),
  ].join('\n');
}

const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);
const round = (ms: number) => Math.round(ms * 10) / 10;
