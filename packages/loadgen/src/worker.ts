import { compareIds } from '@chat/protocol';
import { Histogram } from './histogram.js';
import { makeText, now, readHeader } from './payload.js';
import type { FinalReport, Tick, WorkerCommand, WorkerPlan } from './plan.js';
import { createClient, type LoadClient, type Received } from './transport.js';

/** A worker process: runs its share of the clients and reports to the coordinator over IPC. */

interface Member {
  index: number;
  room: string;
  url: string;
  client: LoadClient;
  /** sender -> next sequence number expected from it */
  expected: Map<number, number>;
  /** Resend mode: sender -> every sequence number received (resends may arrive out of order). */
  received: Map<number, Set<number>>;
  lastId: string | undefined;
  connected: boolean;
  reconnecting?: boolean;
  /** Set when this member also sends. */
  sender?: Sender;
}

interface Sender {
  member: Member;
  seq: number;
  maxAcked: number;
  /** Resend mode: every acknowledged seq. */
  acked: number[];
}

let plan: WorkerPlan;
const members: Member[] = [];
const senders: Sender[] = [];
let latency = new Histogram();
let counters = { sent: 0, acked: 0, failed: 0, delivered: 0, lost: 0, duplicates: 0, reordered: 0, errors: 0, reconnects: 0 };
let connectLatency = new Histogram();
let sendTimer: NodeJS.Timeout | undefined;
let churnTimer: NodeJS.Timeout | undefined;
let lastCpu = process.cpuUsage();
let lastTickAt = Date.now();
let stopping = false;

process.on('message', (command: WorkerCommand) => {
  switch (command.type) {
    case 'start':
      plan = command.plan;
      void start().catch((err: unknown) => send({ type: 'error', message: String(err) }));
      break;
    case 'rate':
      setRate(command.perSender);
      break;
    case 'stop-sending':
      setRate(0);
      clearInterval(churnTimer);
      break;
    case 'final':
      send({ type: 'final', report: finalReport() });
      break;
    case 'exit':
      stopping = true;
      for (const m of members) m.client.close();
      setTimeout(() => process.exit(0), 200).unref();
      break;
  }
});

function send(message: unknown): void {
  process.send?.(message);
}

async function start(): Promise<void> {
  const { clients, rampPerSec } = plan;
  const gapMs = rampPerSec > 0 ? 1000 / rampPerSec : 0;
  const opening: Promise<void>[] = [];
  for (const assignment of clients) {
    opening.push(open(assignment.index, assignment.room, assignment.url, assignment.sender));
    if (gapMs > 0) await new Promise((r) => setTimeout(r, gapMs));
    else if (opening.length % 200 === 0) await Promise.all(opening.slice(-200));
  }
  await Promise.all(opening);
  setInterval(tick, 1000).unref();
  send({ type: 'ready' });
  if (plan.churnPerSec > 0) churnTimer = setInterval(churn, 1000);
}

async function open(index: number, room: string, url: string, isSender: boolean): Promise<void> {
  const member: Member = {
    index, room, url, client: null as unknown as LoadClient, expected: new Map(), received: new Map(), lastId: undefined, connected: false,
  };
  member.client = connectMember(member);
  const started = now();
  await member.client.connect();
  connectLatency.recordMs(now() - started);
  if (plan.join) await member.client.join(room);
  member.connected = true;
  members.push(member);
  if (isSender) senders.push((member.sender = { member, seq: 0, maxAcked: 0, acked: [] }));
}

function connectMember(member: Member): LoadClient {
  const localAddress = plan.localAddresses.length > 0 ? plan.localAddresses[member.index % plan.localAddresses.length] : undefined;
  return createClient(plan.transport, {
    url: member.url,
    urls: plan.urls,
    user: `u${member.index}`,
    localAddress,
    events: {
      message: (m) => onMessage(member, m),
      ack: (ok, seq) => onAck(member, ok, seq),
      closed: () => {
        member.connected = false;
        if (!stopping && !member.reconnecting) counters.errors++;
      },
      reconnected: () => counters.reconnects++,
    },
  }, plan.resend);
}

function onMessage(member: Member, m: Received): void {
  const header = readHeader(m.text);
  if (header === null) return;
  counters.delivered++;
  latency.recordMs(now() - header.sentAt);
  if (plan.checkRoomOrder && member.lastId !== undefined && compareIds(m.id, member.lastId) <= 0) counters.reordered++;
  if (member.lastId === undefined || compareIds(m.id, member.lastId) > 0) member.lastId = m.id;
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

function onAck(member: Member, ok: boolean, seq: number): void {
  const sender = member.sender;
  if (sender === undefined) return;
  if (ok) {
    counters.acked++;
    if (seq > sender.maxAcked) sender.maxAcked = seq;
    if (plan.resend) sender.acked.push(seq);
  } else counters.failed++;
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
        s.seq++;
        counters.sent++;
        s.member.client.send(s.member.room, makeText(senderKey(s), s.seq, plan.size), s.seq);
      }
    }
  }, 10);
}

function senderKey(s: Sender): number {
  return s.member.index;
}

/** Churn: some receivers drop and come back (on another URL), rejoining with since. */
function churn(): void {
  const candidates = members.filter((m) => m.connected && m.sender === undefined);
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
    await member.client.join(member.room, member.lastId);
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
  const elapsed = Date.now() - lastTickAt;
  lastTickAt = Date.now();
  const report: Tick = {
    type: 'tick',
    connected: members.filter((m) => m.connected).length,
    counters,
    latency: latency.toJSON(),
    cpuPercent: ((cpu.user + cpu.system) / 1000 / elapsed) * 100,
  };
  send(report);
  counters = { sent: 0, acked: 0, failed: 0, delivered: 0, lost: 0, duplicates: 0, reordered: 0, errors: 0, reconnects: 0 };
  latency = new Histogram();
}

function finalReport(): FinalReport {
  tick();
  const lastSeen: Record<string, number[]> = {};
  for (const m of members) {
    for (const [sender, next] of m.expected) (lastSeen[sender] ??= []).push(next - 1);
  }
  // Receivers that never heard from a sender of their room count from 0.
  const roomOf = new Map(members.map((m) => [m.index, m.room]));
  const maxAcked: Record<string, number> = {};
  for (const s of senders) maxAcked[senderKey(s)] = s.maxAcked;
  const receiversByRoom: Record<string, number> = {};
  for (const m of members) receiversByRoom[m.room] = (receiversByRoom[m.room] ?? 0) + 1;
  const connect = connectLatency.toJSON();
  const report: FinalReport = {
    lastSeen, maxAcked, senderRooms: Object.fromEntries(senders.map((s) => [senderKey(s), roomOf.get(s.member.index)!])), receiversByRoom, connect,
  };
  if (plan.resend) {
    const received: Record<string, Array<Array<[number, number]>>> = {};
    for (const m of members) for (const [sender, seqs] of m.received) (received[sender] ??= []).push(toRanges([...seqs]));
    report.resend = { acked: Object.fromEntries(senders.map((s) => [senderKey(s), toRanges(s.acked)])), received };
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
