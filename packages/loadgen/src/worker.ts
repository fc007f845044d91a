import { compareIds } from '@chat/protocol';
import { Histogram } from './histogram.js';
import { makeText, now, readHeader } from './payload.js';
import { emptyCounters, type ClientAssignment, type FinalReport, type ProbeReport, type Tick, type TransportTally, type WorkerCommand, type WorkerPlan } from './plan.js';
import { clientTransports, createClient, type ClientTransport, type LoadClient, type Received } from './transport.js';

/** A worker process: runs its share of the clients and reports to the coordinator over IPC. */

interface Member {
  index: number;
  rooms: string[];
  url: string;
  transport: ClientTransport;
  client: LoadClient;
  /** sender key -> next sequence number expected from it */
  expected: Map<number, number>;
  /** Resend mode: sender key -> every sequence number received (resends may arrive out of order). */
  received: Map<number, Set<number>>;
  /** room -> the newest message id seen in it (ids are ordered within a room only) */
  lastId: Map<string, string>;
  connected: boolean;
  reconnecting?: boolean;
  /** The rooms this member also sends into. */
  sends: Sender[];
}

interface Sender {
  member: Member;
  room: string;
  key: number;
  seq: number;
  maxAcked: number;
  /** Resend mode: every acknowledged seq. */
  acked: number[];
}

let plan: WorkerPlan;
const members: Member[] = [];
const senders: Sender[] = [];
const probes: LoadClient[] = [];
let opened = 0; // clients of the plan opened so far (in plan order)
let latency = new Histogram();
let joinLatency = new Histogram();
let ackLatency = new Histogram();
/** A mixed run: each transport's share of this tick. */
let tallies = new Map<ClientTransport, Tally>();
let counters = emptyCounters();
let connectLatency = new Histogram();
let sendTimer: NodeJS.Timeout | undefined;
let churnTimer: NodeJS.Timeout | undefined;
let lastCpu = process.cpuUsage();
let lastTickAt = Date.now();
let stopping = false;

interface Tally { sent: number; acked: number; failed: number; delivered: number; latency: Histogram; ackLatency: Histogram }

function tally(transport: ClientTransport): Tally | undefined {
  if (plan.transport !== 'mixed') return undefined;
  let t = tallies.get(transport);
  if (t === undefined) tallies.set(transport, (t = { sent: 0, acked: 0, failed: 0, delivered: 0, latency: new Histogram(), ackLatency: new Histogram() }));
  return t;
}

/** A client's transport: its own where the run mixes them, else the run's. */
function transportOf(own: ClientTransport | undefined): ClientTransport {
  return own ?? clientTransports(plan.transport)[0]!;
}

process.on('message', (command: WorkerCommand) => {
  switch (command.type) {
    case 'start':
      plan = command.plan;
      void start().catch(fail);
      break;
    case 'open':
      void openUpTo(command.upTo).catch(fail);
      break;
    case 'probe':
      void probe(command.room, command.joins, command.perSec).then((report) => send({ type: 'probed', report }), fail);
      break;
    case 'rate':
      setRate(command.perSender);
      break;
    case 'stop-sending':
      setRate(0);
      clearInterval(churnTimer);
      break;
    case 'flush':
      tick();
      send({ type: 'flushed' });
      break;
    case 'final':
      send({ type: 'final', report: finalReport() });
      break;
    case 'exit':
      stopping = true;
      for (const m of members) m.client.close();
      for (const p of probes) p.close();
      setTimeout(() => process.exit(0), 200).unref();
      break;
  }
});

function send(message: unknown): void {
  process.send?.(message);
}

function fail(err: unknown): void {
  send({ type: 'error', message: String(err) });
}

async function start(): Promise<void> {
  setInterval(tick, 1000).unref();
  for (const p of plan.probes) {
    const client = createClient(transportOf(p.transport), {
      url: p.url, urls: plan.urls, user: `p${p.index}`, events: { message: () => {}, notice: () => {}, closed: () => { if (!stopping) counters.errors++; }, reconnected: () => {} },
    }, plan.resend);
    await client.connect();
    probes.push(client);
  }
  send({ type: 'started' });
}

/** Opens the plan's clients below `upTo`, in order, at the plan's ramp (or 200 at a time). */
async function openUpTo(upTo: number): Promise<void> {
  const gapMs = plan.rampPerSec > 0 ? 1000 / plan.rampPerSec : 0;
  const opening: Promise<void>[] = [];
  for (; opened < plan.clients.length && plan.clients[opened]!.index < upTo; opened++) {
    opening.push(open(plan.clients[opened]!));
    if (gapMs > 0) await new Promise((r) => setTimeout(r, gapMs));
    else if (opening.length % 200 === 0) await Promise.all(opening.slice(-200));
  }
  await Promise.all(opening);
  send({ type: 'ready' });
  if (plan.churnPerSec > 0 && churnTimer === undefined) churnTimer = setInterval(churn, 1000);
}

async function open(assignment: ClientAssignment): Promise<void> {
  const member: Member = {
    index: assignment.index, rooms: assignment.rooms, url: assignment.url, transport: transportOf(assignment.transport), client: null as unknown as LoadClient,
    expected: new Map(), received: new Map(), lastId: new Map(), connected: false, sends: [],
  };
  member.client = connectMember(member);
  const started = now();
  await member.client.connect();
  connectLatency.recordMs(now() - started);
  if (plan.join) for (const room of member.rooms) await timedJoin(member.client, room);
  member.connected = true;
  members.push(member);
  for (const { room, key } of assignment.sends) {
    const sender: Sender = { member, room, key, seq: 0, maxAcked: 0, acked: [] };
    member.sends.push(sender);
    senders.push(sender);
  }
}

async function timedJoin(client: LoadClient, room: string, since?: string): Promise<void> {
  const started = now();
  await client.join(room, since);
  joinLatency.recordMs(now() - started);
  counters.joins++;
}

function connectMember(member: Member): LoadClient {
  const localAddress = plan.localAddresses.length > 0 ? plan.localAddresses[member.index % plan.localAddresses.length] : undefined;
  const client: LoadClient = createClient(member.transport, {
    url: member.url,
    urls: plan.urls,
    user: `u${member.index}`,
    localAddress,
    relayPosts: plan.sseRelay,
    events: {
      // A connection churn closed can still hand over frames it had read; the
      // rejoin's `since` was taken without them and replays them on the new one.
      message: (m) => { if (member.client === client) onMessage(member, m); },
      notice: (kind) => { counters[kind]++; },
      closed: () => {
        if (member.client !== client) return; // a connection churn replaced, closing late
        member.connected = false;
        if (!stopping && !member.reconnecting) counters.errors++;
      },
      reconnected: () => counters.reconnects++,
    },
  }, plan.resend);
  return client;
}

function onMessage(member: Member, m: Received): void {
  const header = readHeader(m.text);
  if (header === null) return;
  counters.delivered++;
  const ms = now() - header.sentAt;
  latency.recordMs(ms);
  const t = tally(member.transport);
  if (t !== undefined) {
    t.delivered++;
    t.latency.recordMs(ms);
  }
  const lastId = member.lastId.get(m.room);
  if (plan.checkRoomOrder && lastId !== undefined && compareIds(m.id, lastId) <= 0) counters.reordered++;
  if (lastId === undefined || compareIds(m.id, lastId) > 0) member.lastId.set(m.room, m.id);
  if (plan.resend) return countOnce(member, header.sender, header.seq);
  const next = member.expected.get(header.sender) ?? 1;
  if (header.seq === next) member.expected.set(header.sender, next + 1);
  else if (header.seq > next) {
    counters.lost += header.seq - next;
    member.expected.set(header.sender, header.seq + 1);
  } else counters.duplicates++;
}

/** Resend mode: a retried send may be stored after a later one, so order per sender is not checked, only once-ness. */
function countOnce(member: Member, sender: number, seq: number): void {
  let seen = member.received.get(sender);
  if (seen === undefined) member.received.set(sender, (seen = new Set()));
  if (seen.has(seq)) counters.duplicates++;
  else seen.add(seq);
}

function onAck(sender: Sender, ok: boolean, seq: number, sentAt: number): void {
  const t = tally(sender.member.transport);
  if (ok) {
    const ms = now() - sentAt;
    ackLatency.recordMs(ms);
    if (t !== undefined) {
      t.acked++;
      t.ackLatency.recordMs(ms);
    }
    counters.acked++;
    if (seq > sender.maxAcked) sender.maxAcked = seq;
    if (plan.resend) sender.acked.push(seq);
  } else {
    counters.failed++;
    if (t !== undefined) t.failed++;
  }
}

function setRate(perSender: number): void {
  clearInterval(sendTimer);
  if (perSender <= 0 || senders.length === 0) return;
  // Send in 10 ms slots, carrying fractions so low rates stay exact. Each sender
  // starts at its own phase, so senders do not all fire in the same slot: bursts
  // would measure the load generator's queueing, not the server's latency.
  const perSlot = perSender / 100;
  const carry = senders.map((_, i) => i / senders.length);
  sendTimer = setInterval(() => {
    for (const [i, s] of senders.entries()) {
      carry[i]! += perSlot;
      for (; carry[i]! >= 1; carry[i]! -= 1) {
        if (!s.member.connected) continue;
        const seq = ++s.seq;
        counters.sent++;
        const t = tally(s.member.transport);
        if (t !== undefined) t.sent++;
        const text = makeText(s.key, seq, plan.size);
        const sentAt = now();
        s.member.client.send(s.room, text, (ok) => onAck(s, ok, seq, sentAt));
      }
    }
  }, 10);
}

/**
 * `joins` joins into `room`, started at `perSec` on the probe connections in turn,
 * each timed from `join` to `joined` and followed by a leave (so the room stays at
 * its size). When every probe connection is still busy, the next join waits for one.
 */
async function probe(room: string, joins: number, perSec: number): Promise<ProbeReport> {
  const histogram = new Histogram();
  let failed = 0;
  const free = [...probes];
  const running = new Set<Promise<void>>();
  const gapMs = 1000 / perSec;
  const began = performance.now();
  for (let n = 0; n < joins; n++) {
    await new Promise((r) => setTimeout(r, Math.max(0, began + n * gapMs - performance.now())));
    while (free.length === 0) await Promise.race(running);
    const client = free.shift()!;
    const op = (async () => {
      const started = now();
      try {
        await client.join(room);
        histogram.recordMs(now() - started);
        counters.joins++;
        await client.leave(room);
      } catch {
        failed++;
      } finally {
        free.push(client);
      }
    })();
    running.add(op);
    void op.finally(() => running.delete(op));
  }
  await Promise.all(running);
  return { latency: histogram.toJSON(), joins: histogram.count, failed };
}

/** Churn: some receivers drop and come back (on another URL), rejoining with since. */
function churn(): void {
  const candidates = members.filter((m) => m.connected && m.sends.length === 0);
  const count = Math.min(candidates.length, Math.max(1, Math.round(candidates.length * plan.churnPerSec)));
  for (let i = 0; i < count; i++) {
    const member = candidates[Math.floor(Math.random() * candidates.length)]!;
    if (!member.connected || member.reconnecting) continue;
    void reconnect(member);
  }
}

async function reconnect(member: Member): Promise<void> {
  member.reconnecting = true;
  member.client.close();
  member.connected = false;
  const urls = plan.urls;
  member.url = urls[(urls.indexOf(member.url) + 1) % urls.length]!;
  try {
    member.client = connectMember(member);
    await member.client.connect();
    for (const room of member.rooms) await timedJoin(member.client, room, member.lastId.get(room));
    member.connected = true;
    counters.reconnects++;
  } catch {
    counters.errors++;
  } finally {
    member.reconnecting = false;
  }
}

function tick(): void {
  const cpu = process.cpuUsage(lastCpu);
  lastCpu = process.cpuUsage();
  const elapsed = Math.max(1, Date.now() - lastTickAt);
  lastTickAt = Date.now();
  const report: Tick = {
    type: 'tick',
    connected: members.filter((m) => m.connected).length,
    counters,
    latency: latency.toJSON(),
    joinLatency: joinLatency.toJSON(),
    ackLatency: ackLatency.toJSON(),
    cpuPercent: ((cpu.user + cpu.system) / 1000 / elapsed) * 100,
    elapsedMs: elapsed,
  };
  if (plan?.transport === 'mixed') {
    report.transports = {};
    for (const transport of clientTransports('mixed')) {
      const t = tally(transport)!;
      report.transports[transport] = {
        connected: members.filter((m) => m.connected && m.transport === transport).length,
        sent: t.sent, acked: t.acked, failed: t.failed, delivered: t.delivered, latency: t.latency.toJSON(), ackLatency: t.ackLatency.toJSON(),
      } satisfies TransportTally;
    }
  }
  send(report);
  counters = emptyCounters();
  latency = new Histogram();
  joinLatency = new Histogram();
  ackLatency = new Histogram();
  tallies = new Map();
}

function finalReport(): FinalReport {
  tick();
  const lastSeen: Record<string, number[]> = {};
  for (const m of members) {
    for (const [sender, next] of m.expected) (lastSeen[sender] ??= []).push(next - 1);
  }
  const maxAcked: Record<string, number> = {};
  for (const s of senders) maxAcked[s.key] = s.maxAcked;
  // Receivers that never heard from a sender of their room count from 0.
  const receiversByRoom: Record<string, number> = {};
  for (const m of members) for (const room of m.rooms) receiversByRoom[room] = (receiversByRoom[room] ?? 0) + 1;
  const connect = connectLatency.toJSON();
  const report: FinalReport = {
    lastSeen, maxAcked, senderRooms: Object.fromEntries(senders.map((s) => [s.key, s.room])), receiversByRoom, connect,
  };
  if (plan.resend) {
    const received: Record<string, Array<Array<[number, number]>>> = {};
    for (const m of members) for (const [sender, seqs] of m.received) (received[sender] ??= []).push(toRanges([...seqs]));
    report.resend = { acked: Object.fromEntries(senders.map((s) => [s.key, toRanges(s.acked)])), received };
  }
  return report;
}

/** Sequence numbers as [first, last] runs: compact over IPC when they are mostly consecutive. */
function toRanges(seqs: number[]): Array<[number, number]> {
  seqs.sort((a, b) => a - b);
  const out: Array<[number, number]> = [];
  for (const seq of seqs) {
    const last = out.at(-1);
    if (last !== undefined && seq === last[1] + 1) last[1] = seq;
    else out.push([seq, seq]);
  }
  return out;
}
