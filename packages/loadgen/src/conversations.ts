import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { compareIds } from '@chat/protocol';
import type {
  ConversationCommand, ConversationCounters, ConversationFinal, ConversationReply, ConversationUser, DirectOpen, Membership,
} from './conversation-plan.js';
import { emptyConversationCounters } from './conversation-plan.js';
import { Histogram } from './histogram.js';
import { cost, Meter, round, type Cost, type Usage } from './meter.js';
import { CONNECTIONS_PER_WORKER } from './workers.js';

/**
 * The conversations scenario: `users` users with `devices` connections each,
 * every user in `directs` direct conversations (opened with `open`) and some in
 * `groups` members-only rooms of `groupSize` (made through the server API).
 * In a fraction `joined` of the memberships one device of the user joins the
 * room (and may send into it); every other device only hears `unread`. Messages
 * go to random joined memberships at `rate`, reads move positions forward at
 * `readRate` and `rooms` requests are timed at `listRate`. At the end every
 * connection's latest `unread` per room, and its whole `rooms` list, must equal
 * what the generator computes: the messages after the user's read position (a
 * read's answer, or the user's own newest message), which by construction are
 * all by others.
 *
 * `openRooms`: the baseline for cost comparisons: the same rooms open, every
 * device of every member joined, no counts (only deliveries are checked).
 */
export interface ConversationsOptions {
  urls: string[];
  users: number;
  devices: number;
  /** Direct conversations per user. */
  directs: number;
  groups: number;
  groupSize: number;
  /** Fraction of memberships in which one device joined (each room has at least one). */
  joined: number;
  /** Share of the messages that go to groups (when there are both). */
  groupShare: number;
  rate: number;
  readRate: number;
  listRate: number;
  size: number;
  duration: number;
  /** Seconds held idle and measured before the traffic (Redis and server CPU background). */
  idle: number;
  openRooms: boolean;
  /** The server API (groups): the gateways' API_KEY, and its base URL (default: the first URL's host). */
  apiKey?: string;
  apiUrl?: string;
  workers: number;
  redisUrls: string[];
  serverPids: number[];
  /** How long to wait for every connection's first `unread` of each room before the traffic. */
  settleTimeoutMs: number;
  progress: (line: string) => void;
}

export interface Quantiles { count: number; p50: number; p99: number; max: number }

export interface CountCheck {
  /** (user, room) pairs and (connection, room) pairs compared. */
  pairs: number;
  views: number;
  /** A connection's latest `unread` count differs from the expected count (or it never got one). */
  unreadMismatches: number;
  /** Its `rooms` list gives another count, or lacks the room. */
  listMismatches: number;
  /** (user, room) pairs whose connections do not all show the same latest count. */
  disagreeing: number;
  /** Joined (connection, room) pairs that did not get every acknowledged message of the room once. */
  deliveryMismatches: number;
  examples: string[];
}

export interface ConversationsReport {
  scenario: 'conversations';
  urls: string[];
  openRooms: boolean;
  users: number;
  devices: number;
  connections: number;
  directs: number;
  groups: number;
  groupSize: number;
  memberships: number;
  joinedMemberships: number;
  workers: number;
  setup: { seconds: number; opensFailed: number; joinsFailed: number; missingFirstUnread: number };
  traffic: {
    rate: number; readRate: number; listRate: number; seconds: number;
    sent: number; acked: number; failed: number; reads: number; readsFailed: number; lists: number; listsFailed: number; unanswered: number;
    delivered: number; unreads: number; loadgenCpuPercent: number;
  };
  latencyMs: { ack: Quantiles; delivery: Quantiles; unread: Quantiles; rooms: Quantiles; read: Quantiles };
  counts: CountCheck;
  /** Background before the traffic (with --idle, --redis-url or --server-pid). */
  idle?: Cost;
  /** The traffic window (sending and the drain), per acknowledged message; `net` less the idle background. */
  cost?: Cost & { netRedisCpuUs?: number; netServerCpuUs?: number };
  ok: boolean;
}

interface PlannedRoom {
  key: string;
  kind: 'direct' | 'group';
  members: number[];
  /** Per member: the device that joins, or -1. */
  joinDevice: number[];
  /** Share of all messages. */
  weight: number;
  name?: string;
}

export interface ConversationsPlan {
  run: string;
  users: ConversationUser[];
  rooms: PlannedRoom[];
}

/**
 * Direct conversation pairs, every user in exactly `perUser` of them, none twice: a
 * circulant graph (user i with i ± 1 .. i ± perUser/2, and i + users/2 when perUser
 * is odd, which needs an even number of users).
 */
export function directPairs(users: number, perUser: number): Array<[number, number]> {
  if (perUser === 0) return [];
  if (perUser > users - 1) throw new Error(`${perUser} direct conversations per user need at least ${perUser + 1} users`);
  if (perUser % 2 === 1 && users % 2 === 1) throw new Error('an odd number of direct conversations per user needs an even number of users');
  const pairs: Array<[number, number]> = [];
  for (let offset = 1; offset <= Math.floor(perUser / 2); offset++) for (let i = 0; i < users; i++) pairs.push([i, (i + offset) % users]);
  if (perUser % 2 === 1) for (let i = 0; i < users / 2; i++) pairs.push([i, i + users / 2]);
  return pairs;
}

/** Group g: `size` consecutive users from g × users/groups (wrapping), so groups spread over all users. */
export function groupMembers(users: number, groups: number, size: number, g: number): number[] {
  const start = Math.floor((g * users) / groups);
  return Array.from({ length: Math.min(size, users) }, (_, j) => (start + j) % users);
}

/** A small seeded generator: the same plan for the same run id. */
function random(seed: string): () => number {
  let a = [...seed].reduce((h, c) => Math.imul(h ^ c.charCodeAt(0), 2654435761) >>> 0, 7);
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function planConversations(o: Pick<ConversationsOptions, 'urls' | 'users' | 'devices' | 'directs' | 'groups' | 'groupSize' | 'joined' | 'groupShare' | 'openRooms'>, run = Math.random().toString(36).slice(2, 8)): ConversationsPlan {
  const rand = random(run);
  const users: ConversationUser[] = Array.from({ length: o.users }, (_, i) => ({
    index: i, name: `c-${run}-${i}`, urls: Array.from({ length: o.devices }, (_, d) => o.urls[(i + d) % o.urls.length]!),
  }));
  const pairs = directPairs(o.users, o.directs);
  const directShare = o.groups === 0 ? 1 : pairs.length === 0 ? 0 : 1 - o.groupShare;
  const groupShare = 1 - directShare;
  const rooms: PlannedRoom[] = [];
  const joinDevices = (members: number[], r: number): number[] => members.map((_, j) => (j === 0 || rand() < o.joined ? (r + j) % o.devices : -1));
  for (const [i, pair] of pairs.entries()) {
    rooms.push({ key: `d${i}`, kind: 'direct', members: pair, joinDevice: joinDevices(pair, i), weight: directShare / pairs.length, ...(o.openRooms && { name: `conv-${run}-d${i}` }) });
  }
  for (let g = 0; g < o.groups; g++) {
    const members = groupMembers(o.users, o.groups, o.groupSize, g);
    rooms.push({ key: `g${g}`, kind: 'group', members, joinDevice: joinDevices(members, g), weight: groupShare / o.groups, name: `conv-${run}-g${g}` });
  }
  return { run, users, rooms };
}

/** Each room's memberships with its name, weights split evenly over the members that joined. */
function memberships(plan: ConversationsPlan): Membership[] {
  const out: Membership[] = [];
  for (const room of plan.rooms) {
    const senders = room.joinDevice.filter((d) => d >= 0).length;
    for (const [j, user] of room.members.entries()) {
      const joinDevice = room.joinDevice[j]!;
      out.push({ user, room: room.name!, joinDevice, weight: joinDevice >= 0 ? room.weight / senders : 0 });
    }
  }
  return out;
}

/** The worker processes, driven over IPC; user i lives in worker i mod count. */
class ConversationWorkers {
  readonly #procs: ChildProcess[] = [];
  readonly #waiting: Array<Map<string, Array<(reply: ConversationReply) => void>>> = [];
  #failure: ((err: Error) => void) | undefined;

  constructor(count: number, onTick: (tick: Extract<ConversationReply, { type: 'tick' }>, worker: number) => void) {
    const entry = fileURLToPath(new URL('./conversation-worker.js', import.meta.url));
    for (let i = 0; i < count; i++) {
      const proc = fork(entry, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      const waiting = new Map<string, Array<(reply: ConversationReply) => void>>();
      proc.on('message', (reply: ConversationReply) => {
        if (reply.type === 'tick') return onTick(reply, i);
        if (reply.type === 'error') return this.#failure?.(new Error(`worker ${i}: ${reply.message}`));
        waiting.get(reply.type)?.shift()?.(reply);
      });
      proc.on('exit', (code) => { if (code !== 0 && code !== null) this.#failure?.(new Error(`worker ${i} exited with ${code}`)); });
      this.#procs.push(proc);
      this.#waiting.push(waiting);
    }
  }

  get count(): number {
    return this.#procs.length;
  }

  /** Sends each worker its command and resolves with every answer of type `answer`, in worker order. */
  ask<T extends ConversationReply['type']>(commands: ConversationCommand[] | ConversationCommand, answer: T, timeoutMs: number): Promise<Array<Extract<ConversationReply, { type: T }>>> {
    const list = Array.isArray(commands) ? commands : this.#procs.map(() => commands);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`workers did not answer ${answer} within ${timeoutMs} ms`)), timeoutMs);
      this.#failure = (err) => { clearTimeout(timer); reject(err); };
      void Promise.all(list.map((command, i) => new Promise<ConversationReply>((got) => {
        const queue = this.#waiting[i]!.get(answer) ?? [];
        queue.push(got);
        this.#waiting[i]!.set(answer, queue);
        this.#procs[i]!.send(command);
      }))).then((replies) => {
        clearTimeout(timer);
        resolve(replies as Array<Extract<ConversationReply, { type: T }>>);
      });
    });
  }

  tell(command: ConversationCommand, index: number): void {
    this.#procs[index]!.send(command);
  }

  async exit(): Promise<void> {
    this.#failure = undefined;
    for (const proc of this.#procs) if (proc.connected) proc.send({ type: 'exit' } satisfies ConversationCommand);
    await Promise.all(this.#procs.map((p) => new Promise((r) => (p.exitCode !== null || p.signalCode !== null ? r(null) : p.once('exit', r)))));
  }
}

/** Sums the workers' ticks; one progress line a second. */
class Totals {
  readonly connected = new Map<number, number>();
  readonly cpu = new Map<number, number>();
  total = emptyConversationCounters();
  window = emptyConversationCounters();
  readonly #started = Date.now();

  /** worker -> [sum of its ticks' CPU %, ticks] since the last reset */
  readonly #cpuSamples = new Map<number, [number, number]>();

  add(tick: Extract<ConversationReply, { type: 'tick' }>, worker: number): void {
    this.connected.set(worker, tick.connected);
    this.cpu.set(worker, tick.cpuPercent);
    const [cpu, ticks] = this.#cpuSamples.get(worker) ?? [0, 0];
    this.#cpuSamples.set(worker, [cpu + tick.cpuPercent, ticks + 1]);
    for (const key of Object.keys(this.total) as Array<keyof ConversationCounters>) {
      this.total[key] += tick.counters[key];
      this.window[key] += tick.counters[key];
    }
  }

  line(): string {
    const c = this.window;
    this.window = emptyConversationCounters();
    return `[${String(Math.round((Date.now() - this.#started) / 1000)).padStart(3)}s] conn ${sum(this.connected)} | sent ${c.sent}/s acked ${c.acked}/s `
      + `| delivered ${c.delivered}/s | unread ${c.unreads}/s | reads ${c.reads}/s | rooms ${c.lists}/s | errors ${c.errors + c.failed} | loadgen cpu ${sum(this.cpu).toFixed(0)}%`;
  }

  reset(): void {
    this.total = emptyConversationCounters();
    this.#cpuSamples.clear();
  }

  /** All workers together since the last reset, in % of one core. */
  meanCpu(): number {
    let total = 0;
    for (const [cpu, ticks] of this.#cpuSamples.values()) total += cpu / Math.max(1, ticks);
    return total;
  }

  frames(): number {
    return this.total.delivered + this.total.unreads;
  }
}

const SETUP_TIMEOUT_MS = 120_000;
const DRAIN_TIMEOUT_MS = 10_000;
/** After the last answers: wait until no frame arrived for QUIET_MS (at most MAX_QUIET_WAIT_MS). */
const QUIET_MS = 1000;
const MAX_QUIET_WAIT_MS = 15_000;

export async function runConversations(o: ConversationsOptions): Promise<ConversationsReport> {
  const plan = planConversations(o);
  const connections = o.users * o.devices;
  const count = Math.min(o.users, Math.max(o.workers, Math.ceil(connections / CONNECTIONS_PER_WORKER)));
  const totals = new Totals();
  const workers = new ConversationWorkers(count, (tick, i) => totals.add(tick, i));
  const ticker = setInterval(() => o.progress(totals.line()), 1000);
  const meter = new Meter(o.serverPids, o.redisUrls);
  const mine = <T extends { user: number }>(items: T[], w: number) => items.filter((item) => item.user % count === w);
  try {
    const setupStarted = performance.now();
    const started = await workers.ask(Array.from({ length: count }, (_, w) => ({
      type: 'start' as const, plan: { users: plan.users.filter((u) => u.index % count === w), size: o.size, openRooms: o.openRooms, batch: 200 },
    })), 'started', SETUP_TIMEOUT_MS + connections * 5);
    const failed = started.reduce((n, s) => n + s.failed, 0);
    if (failed > 0) throw new Error(`${failed} of ${connections} connections failed`);
    o.progress(`connected: ${connections} connections of ${o.users} users`);

    let opensFailed = 0;
    if (!o.openRooms) {
      const directs = plan.rooms.filter((r) => r.kind === 'direct');
      const opens: DirectOpen[] = directs.map((r, key) => ({ key, user: r.members[0]!, with: plan.users[r.members[1]!]!.name }));
      const opened = await workers.ask(Array.from({ length: count }, (_, w) => ({ type: 'open' as const, opens: mine(opens, w) })), 'opened', SETUP_TIMEOUT_MS);
      for (const reply of opened) {
        opensFailed += reply.failed;
        for (const [key, room] of reply.rooms) directs[key]!.name = room;
      }
      if (opensFailed > 0) throw new Error(`${opensFailed} direct conversations could not be opened`);
      const groups = plan.rooms.filter((r) => r.kind === 'group');
      for (const group of groups) await makeMembersOnly(o, group.name!, group.members.map((m) => plan.users[m]!.name));
      o.progress(`rooms: ${directs.length} direct conversations opened, ${groups.length} members-only groups made`);
    }
    const all = memberships(plan);
    const settled = await workers.ask(Array.from({ length: count }, (_, w) => ({ type: 'rooms' as const, memberships: mine(all, w), timeoutMs: o.settleTimeoutMs })),
      'settled', SETUP_TIMEOUT_MS + o.settleTimeoutMs);
    const joinsFailed = settled.reduce((n, s) => n + s.joinsFailed, 0);
    const missingFirstUnread = settled.reduce((n, s) => n + s.missing, 0);
    const setupSeconds = round((performance.now() - setupStarted) / 1000, 3);
    o.progress(`settled in ${setupSeconds} s: joins failed ${joinsFailed}, connections still without a room's first unread ${missingFirstUnread}`);

    const metering = o.redisUrls.length > 0 || o.serverPids.length > 0;
    let idle: Cost | undefined;
    if (o.idle > 0 && metering) {
      const mark = await meter.mark();
      await sleep(o.idle * 1000);
      idle = cost(await meter.since(mark), 1);
      o.progress(`idle ${o.idle} s: Redis CPU ${idle.redisCpuPercent ?? '?'}%, server CPU ${idle.serverCpuPercent ?? '?'}%`);
    }

    await workers.ask({ type: 'flush' }, 'flushed', 30_000);
    totals.reset();
    const cpuMark = await meter.mark();
    const trafficStarted = performance.now();
    const shares = Array.from({ length: count }, (_, w) => {
      const weight = mine(all, w).reduce((s, m) => s + m.weight, 0);
      const users = plan.users.filter((u) => u.index % count === w).length;
      return { type: 'traffic' as const, messages: o.rate * weight, reads: (o.readRate * users) / o.users, lists: (o.listRate * users) / o.users };
    });
    shares.forEach((command, w) => workers.tell(command, w));
    await sleep(o.duration * 1000);
    const sendingSeconds = (performance.now() - trafficStarted) / 1000;
    await workers.ask({ type: 'stop', timeoutMs: DRAIN_TIMEOUT_MS }, 'stopped', DRAIN_TIMEOUT_MS + 30_000);
    await quiet(workers, totals);
    const usage = metering ? await meter.since(cpuMark) : undefined;
    const loadgenCpu = totals.meanCpu();

    const finals = (await workers.ask({ type: 'final' }, 'final', 120_000)).map((f) => f.report);
    const roomsOf = new Map<number, string[]>();
    for (const m of all) (roomsOf.get(m.user) ?? roomsOf.set(m.user, []).get(m.user)!).push(m.room);
    const counts = checkCounts(roomsOf, finals, o.openRooms, (u) => plan.users[u]!.name);
    const merged = mergeHistograms(finals);
    const t = totals.total;
    const unanswered = finals.reduce((n, f) => n + f.unanswered, 0);
    const report: ConversationsReport = {
      scenario: 'conversations', urls: o.urls, openRooms: o.openRooms, users: o.users, devices: o.devices, connections,
      directs: plan.rooms.filter((r) => r.kind === 'direct').length, groups: o.groups, groupSize: Math.min(o.groupSize, o.users),
      memberships: all.length, joinedMemberships: all.filter((m) => m.joinDevice >= 0).length, workers: count,
      setup: { seconds: setupSeconds, opensFailed, joinsFailed, missingFirstUnread },
      traffic: {
        rate: o.rate, readRate: o.readRate, listRate: o.listRate, seconds: round(sendingSeconds, 3),
        sent: t.sent, acked: t.acked, failed: t.failed, reads: t.reads, readsFailed: finals.reduce((n, f) => n + f.readsFailed, 0),
        lists: t.lists, listsFailed: finals.reduce((n, f) => n + f.listsFailed, 0), unanswered, delivered: t.delivered, unreads: t.unreads,
        loadgenCpuPercent: Math.round(loadgenCpu),
      },
      latencyMs: {
        ack: quantiles(merged.ack), delivery: quantiles(merged.delivery), unread: quantiles(merged.unread), rooms: quantiles(merged.list), read: quantiles(merged.read),
      },
      counts,
      ok: counts.unreadMismatches + counts.listMismatches + counts.disagreeing + counts.deliveryMismatches === 0
        && t.failed === 0 && unanswered === 0 && joinsFailed === 0 && t.errors === 0,
    };
    if (idle) report.idle = idle;
    if (usage) report.cost = perMessage(usage, t.acked, idle);
    return report;
  } finally {
    clearInterval(ticker);
    await workers.exit();
  }
}

/** After the answers are in: until no frame arrived for QUIET_MS, so late counts are counted. */
async function quiet(workers: ConversationWorkers, totals: Totals): Promise<void> {
  const until = Date.now() + MAX_QUIET_WAIT_MS;
  await workers.ask({ type: 'flush' }, 'flushed', 30_000);
  let frames = totals.frames();
  while (Date.now() < until) {
    await sleep(QUIET_MS);
    await workers.ask({ type: 'flush' }, 'flushed', 30_000);
    if (totals.frames() === frames) return;
    frames = totals.frames();
  }
}

function perMessage(usage: Usage, messages: number, idle: Cost | undefined): Cost & { netRedisCpuUs?: number; netServerCpuUs?: number } {
  const out: Cost & { netRedisCpuUs?: number; netServerCpuUs?: number } = cost(usage, messages);
  const n = Math.max(1, messages);
  if (usage.redis && idle?.redisCpuPercent !== undefined) out.netRedisCpuUs = round(((usage.redis.cpuSeconds - (idle.redisCpuPercent / 100) * usage.seconds) / n) * 1e6, 2);
  if (usage.serverCpuSeconds !== undefined && idle?.serverCpuPercent !== undefined) {
    out.netServerCpuUs = round(((usage.serverCpuSeconds - (idle.serverCpuPercent / 100) * usage.seconds) / n) * 1e6, 2);
  }
  return out;
}

/**
 * Compares what each connection was told with what the acknowledged messages and
 * answered reads imply. A user's position in a room is the newest of their
 * answered reads and their own messages (sending moves it); every message after
 * it is by someone else, since their own are at or before it, so the expected
 * count is the number of messages after it.
 */
export function checkCounts(roomsOf: Map<number, string[]>, finals: ConversationFinal[], openRooms: boolean, nameOf: (user: number) => string = String): CountCheck {
  const byRoom = new Map<string, string[]>();
  const position = new Map<string, string>();
  const raise = (key: string, id: string) => {
    const known = position.get(key);
    if (known === undefined || compareIds(id, known) > 0) position.set(key, id);
  };
  for (const f of finals) {
    for (const [room, id, user] of f.acked) {
      (byRoom.get(room) ?? byRoom.set(room, []).get(room)!).push(id);
      raise(`${user}|${room}`, id);
    }
    for (const [user, room, id] of f.reads) raise(`${user}|${room}`, id);
  }
  for (const ids of byRoom.values()) ids.sort(compareIds);
  const after = (room: string, id: string | undefined): number => {
    const ids = byRoom.get(room) ?? [];
    if (id === undefined) return ids.length;
    let lo = 0;
    let hi = ids.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (compareIds(ids[mid]!, id) <= 0) lo = mid + 1;
      else hi = mid;
    }
    return ids.length - lo;
  };
  const views = new Map<number, ConversationFinal['devices']>();
  for (const f of finals) for (const v of f.devices) (views.get(v.user) ?? views.set(v.user, []).get(v.user)!).push(v);
  const check: CountCheck = { pairs: 0, views: 0, unreadMismatches: 0, listMismatches: 0, disagreeing: 0, deliveryMismatches: 0, examples: [] };
  const example = (line: string) => { if (check.examples.length < 8) check.examples.push(line); };
  for (const [user, rooms] of roomsOf) {
    const devices = (views.get(user) ?? []).sort((a, b) => a.device - b.device);
    for (const room of rooms) {
      check.pairs++;
      const total = byRoom.get(room)?.length ?? 0;
      const expected = after(room, position.get(`${user}|${room}`));
      const seen = new Set<number | undefined>();
      for (const view of devices) {
        check.views++;
        const delivered = view.delivered[room];
        if (delivered !== undefined && delivered !== total) {
          check.deliveryMismatches++;
          example(`${nameOf(user)} device ${view.device} in ${room}: ${delivered} messages delivered of ${total} acknowledged`);
        }
        if (openRooms) continue;
        const unread = view.unread[room];
        const listed = view.listed === null ? undefined : view.listed[room];
        seen.add(unread);
        if (unread !== expected) {
          check.unreadMismatches++;
          example(`${nameOf(user)} device ${view.device} in ${room}: latest unread ${unread ?? 'none'}, expected ${expected} (${total} messages, position ${position.get(`${user}|${room}`) ?? 'none'})`
            + `${view.trail[room] === undefined ? '' : `; its last unread frames: ${view.trail[room]}`}`);
        }
        if (listed !== expected) {
          check.listMismatches++;
          example(`${nameOf(user)} device ${view.device} in ${room}: rooms list ${listed ?? (view.listed === null ? 'unreadable' : 'lacks it')}, expected ${expected}`);
        }
      }
      if (seen.size > 1) check.disagreeing++;
    }
  }
  return check;
}

function mergeHistograms(finals: ConversationFinal[]): Record<keyof ConversationFinal['histograms'], Histogram> {
  const out = { ack: new Histogram(), delivery: new Histogram(), unread: new Histogram(), list: new Histogram(), read: new Histogram() };
  for (const f of finals) for (const key of Object.keys(out) as Array<keyof typeof out>) out[key].merge(f.histograms[key]);
  return out;
}

function quantiles(h: Histogram): Quantiles {
  return { count: h.count, p50: round(h.quantileMs(0.5)), p99: round(h.quantileMs(0.99)), max: round(h.max) };
}

/** PUT /api/rooms/{room}/membership, at most 1000 members a call; 429 and 503 are retried, as the API asks. */
async function makeMembersOnly(o: ConversationsOptions, room: string, members: string[]): Promise<void> {
  if (o.apiKey === undefined) throw new Error('groups are made through the server API: give --api-key (the gateways\' API_KEY), or --groups 0');
  const base = o.apiUrl ?? httpBase(o.urls[0]!);
  for (let i = 0; i < members.length; i += 1000) {
    const body = JSON.stringify({ members: members.slice(i, i + 1000) });
    for (let attempt = 1; ; attempt++) {
      const res = await fetch(`${base}/api/rooms/${encodeURIComponent(room)}/membership`, {
        method: 'PUT', body, headers: { authorization: `Bearer ${o.apiKey}`, 'content-type': 'application/json' },
      });
      if (res.ok) {
        await res.arrayBuffer();
        break;
      }
      const text = await res.text();
      if ((res.status !== 429 && res.status !== 503) || attempt >= 20) throw new Error(`PUT membership of ${room}: ${res.status} ${text}`);
      await sleep(500);
    }
  }
}

/** ws://host:port/ws -> http://host:port */
export function httpBase(url: string): string {
  const u = new URL(url);
  return `${u.protocol === 'wss:' ? 'https:' : 'http:'}//${u.host}`;
}

export function describeConversations(r: ConversationsReport): string {
  const q = (l: Quantiles) => (l.count === 0 ? 'none' : `p50 ${l.p50} ms, p99 ${l.p99} ms, max ${l.max} ms (${l.count})`);
  const t = r.traffic;
  const c = r.counts;
  const rows: Array<[string, string]> = [
    ['scenario', `conversations against ${r.urls.length} URL(s): ${r.users} users × ${r.devices} devices = ${r.connections} connections, ${r.workers} workers`],
    ['rooms', `${r.directs} direct conversations, ${r.groups} groups of ${r.groupSize} (${r.openRooms ? 'OPEN rooms, every device joined: the baseline' : 'members-only'}); `
      + `${r.memberships} memberships, ${r.joinedMemberships} with a device joined`],
    ['setup', `${r.setup.seconds} s; joins failed ${r.setup.joinsFailed}, (connection, room) without a first unread ${r.setup.missingFirstUnread}`],
    ['traffic', `${t.rate} msg/s, ${t.readRate} reads/s, ${t.listRate} rooms/s for ${t.seconds} s: sent ${t.sent}, acked ${t.acked}, failed ${t.failed}; `
      + `reads ${t.reads} (failed ${t.readsFailed}); rooms ${t.lists} (failed ${t.listsFailed}); unanswered ${t.unanswered}`],
    ['  frames', `${t.delivered} messages to joined connections, ${t.unreads} unread`],
    ['  send->ack', q(r.latencyMs.ack)],
    ['  delivery', q(r.latencyMs.delivery)],
    ['  unread', `${q(r.latencyMs.unread)} (send to an unread carrying the message)`],
    ['  rooms', q(r.latencyMs.rooms)],
    ['  read', `${q(r.latencyMs.read)} (read to its answer)`],
  ];
  if (r.openRooms) rows.push(['deliveries', `${c.views} (connection, room) checked: mismatches ${c.deliveryMismatches}`]);
  else {
    rows.push(['counts', `${c.pairs} (user, room) on ${c.views} (connection, room): unread mismatches ${c.unreadMismatches}, rooms-list mismatches ${c.listMismatches}, `
      + `devices disagreeing ${c.disagreeing}, delivery mismatches ${c.deliveryMismatches}`]);
  }
  for (const line of c.examples) rows.push(['  e.g.', line]);
  if (r.idle) rows.push(['idle', `Redis CPU ${r.idle.redisCpuPercent ?? '?'}%, server CPU ${r.idle.serverCpuPercent ?? '?'}% over ${r.idle.seconds} s`]);
  if (r.cost) {
    const k = r.cost;
    if (k.redisCpuUs !== undefined) rows.push(['redis cpu', `${k.redisCpuPercent}% = ${k.redisCpuUs} µs per message${k.netRedisCpuUs === undefined ? '' : ` (${k.netRedisCpuUs} less idle)`}, `
      + `${k.redisScriptsPer} scripts and ${k.redisCommandsPer} commands per message`]);
    if (k.serverCpuUs !== undefined) rows.push(['server cpu', `${k.serverCpuPercent}% = ${k.serverCpuUs} µs per message${k.netServerCpuUs === undefined ? '' : ` (${k.netServerCpuUs} less idle)`}`]);
  }
  rows.push(['loadgen cpu', `${t.loadgenCpuPercent}%`]);
  rows.push(['verdict', r.ok ? 'OK' : 'FAILED']);
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n');
}

function sum(values: Map<number, number>): number {
  let total = 0;
  for (const v of values.values()) total += v;
  return total;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
