import { compareIds, ROOMS_MAX_LIMIT, type RoomsFrame } from '@chat/protocol';
import { ConversationClient } from './conversation-client.js';
import {
  emptyConversationCounters, type ConversationCommand, type ConversationFinal, type ConversationReply, type ConversationWorkerPlan,
  type DeviceView, type DirectOpen, type Membership,
} from './conversation-plan.js';
import { Histogram } from './histogram.js';
import { makeText, now, readHeader } from './payload.js';

/**
 * A worker process of the conversations scenario: every device of its users,
 * their sends, reads and room lists, and what each connection was told.
 */

interface Device {
  user: User;
  index: number;
  client: ConversationClient;
  /** room -> what this connection knows of it */
  rooms: Map<string, DeviceRoom>;
}

interface DeviceRoom {
  /** The count of the latest `unread`; undefined before the first. */
  count: number | undefined;
  /** The newest message this connection was shown (a `message`, or an `unread`'s `last`). */
  newest: string | undefined;
  joined: boolean;
  delivered: number;
  /** The last TRAIL `unread` frames: count, position, the message it carried, whether it answered a read of this connection. */
  trail: Array<[number, string, string | undefined, boolean]>;
}

const TRAIL = 3;

interface User {
  index: number;
  name: string;
  devices: Device[];
  rooms: string[];
  /** room -> the newest position a read of this user was answered with */
  read: Map<string, string>;
}

/** One membership that sends, and the running total of the weights up to it (for a weighted pick). */
interface Sender { device: Device; room: string; upTo: number }

let plan: ConversationWorkerPlan;
const users: User[] = [];
const byIndex = new Map<number, User>();
let senders: Sender[] = [];
const acked: Array<[string, string, number]> = [];
let counters = emptyConversationCounters();
const histograms = { ack: new Histogram(), delivery: new Histogram(), unread: new Histogram(), list: new Histogram(), read: new Histogram() };
let readsFailed = 0;
let listsFailed = 0;
let seq = 0;
let stopping = false;
let timer: NodeJS.Timeout | undefined;
let lastCpu = process.cpuUsage();
let lastTickAt = Date.now();
const inFlight = new Set<Promise<unknown>>();

process.on('message', (command: ConversationCommand) => {
  const run = (work: () => Promise<ConversationReply | undefined>): void => {
    work().then((reply) => reply && send(reply), (err: unknown) => send({ type: 'error', message: err instanceof Error ? err.stack ?? err.message : String(err) }));
  };
  switch (command.type) {
    case 'start':
      plan = command.plan;
      setInterval(tick, 1000).unref();
      return run(start);
    case 'open':
      return run(() => openDirect(command.opens));
    case 'rooms':
      return run(() => settle(command.memberships, command.timeoutMs));
    case 'traffic':
      return traffic(command.messages, command.reads, command.lists);
    case 'stop':
      traffic(0, 0, 0);
      return run(() => drain(command.timeoutMs));
    case 'flush':
      tick();
      return send({ type: 'flushed' });
    case 'final':
      return run(final);
    case 'exit':
      stopping = true;
      for (const u of users) for (const d of u.devices) d.client.close();
      setTimeout(() => process.exit(0), 200).unref();
      return;
  }
});

function send(message: ConversationReply): void {
  process.send?.(message);
}

/** Connects every device, `plan.batch` at a time. */
async function start(): Promise<ConversationReply> {
  const devices: Device[] = [];
  for (const u of plan.users) {
    const user: User = { index: u.index, name: u.name, devices: [], rooms: [], read: new Map() };
    users.push(user);
    byIndex.set(u.index, user);
    for (const [i, url] of u.urls.entries()) {
      const device: Device = { user, index: i, rooms: new Map(), client: null as unknown as ConversationClient };
      device.client = new ConversationClient(url, u.name, {
        message: (room, id, text) => onMessage(device, room, id, text),
        unread: (room, count, read, last, answer) => onUnread(device, room, count, read, last, answer),
        stray: () => { counters.errors++; },
        closed: () => { if (!stopping) counters.errors++; },
      });
      user.devices.push(device);
      devices.push(device);
    }
  }
  let failed = 0;
  for (let i = 0; i < devices.length; i += plan.batch) {
    const results = await Promise.allSettled(devices.slice(i, i + plan.batch).map((d) => d.client.connect()));
    failed += results.filter((r) => r.status === 'rejected').length;
  }
  return { type: 'started', connected: devices.length - failed, failed };
}

/** The direct conversations this worker's users open: the gateway names their rooms. */
async function openDirect(opens: DirectOpen[]): Promise<ConversationReply> {
  const rooms: Array<[number, string]> = [];
  let failed = 0;
  await inBatches(opens, plan.batch, async (o) => {
    const answer = await byIndex.get(o.user)!.devices[0]!.client.request('open', `"with":${JSON.stringify(o.with)}`, 'o');
    const room = answer.error ? undefined : (JSON.parse(answer.raw) as { room?: string }).room;
    if (room === undefined) failed++;
    else rooms.push([o.key, room]);
  });
  return { type: 'opened', rooms, failed };
}

/**
 * Joins where the plan says, then waits until every device has heard of each of
 * its user's rooms (members-only: its first `unread`, which a gateway sends once
 * it counts the room for the user), so that traffic starts on rooms every node counts.
 */
async function settle(memberships: Membership[], timeoutMs: number): Promise<ConversationReply> {
  const weights: Array<{ device: Device; room: string; weight: number }> = [];
  const joins: Array<{ device: Device; room: string }> = [];
  for (const m of memberships) {
    const user = byIndex.get(m.user)!;
    user.rooms.push(m.room);
    for (const device of user.devices) roomOf(device, m.room);
    const joiners = plan.openRooms ? user.devices : m.joinDevice >= 0 ? [user.devices[m.joinDevice]!] : [];
    for (const device of joiners) joins.push({ device, room: m.room });
    if (m.weight > 0 && m.joinDevice >= 0) weights.push({ device: user.devices[m.joinDevice]!, room: m.room, weight: m.weight });
  }
  let joinsFailed = 0;
  await inBatches(joins, plan.batch, async ({ device, room }) => {
    const answer = await device.client.request('join', `"room":${JSON.stringify(room)}`, 'j');
    if (answer.error) joinsFailed++;
    else roomOf(device, room).joined = true;
  });
  let total = 0;
  senders = weights.map(({ device, room, weight }) => ({ device, room, upTo: (total += weight) }));
  const missing = (): number => (plan.openRooms ? 0 : users.reduce((n, u) => n + u.devices.reduce((m, d) => m + u.rooms.filter((r) => d.rooms.get(r)?.count === undefined).length, 0), 0));
  const until = Date.now() + timeoutMs;
  while (missing() > 0 && Date.now() < until) await sleep(50);
  return { type: 'settled', joinsFailed, missing: missing() };
}

function roomOf(device: Device, room: string): DeviceRoom {
  let state = device.rooms.get(room);
  if (state === undefined) device.rooms.set(room, (state = { count: undefined, newest: undefined, joined: false, delivered: 0, trail: [] }));
  return state;
}

function onMessage(device: Device, room: string, id: string, text: string): void {
  counters.delivered++;
  const header = readHeader(text);
  if (header !== null) histograms.delivery.recordMs(now() - header.sentAt);
  const state = roomOf(device, room);
  state.delivered++;
  if (state.newest === undefined || compareIds(id, state.newest) > 0) state.newest = id;
}

function onUnread(device: Device, room: string, count: number, read: string, last: { id: string; text: string } | undefined, answer: boolean): void {
  counters.unreads++;
  const state = roomOf(device, room);
  state.count = count;
  if (state.trail.length === TRAIL) state.trail.shift();
  state.trail.push([count, read, last?.id, answer]);
  if (last === undefined) return;
  const header = readHeader(last.text);
  if (header !== null) histograms.unread.recordMs(now() - header.sentAt);
  if (state.newest === undefined || compareIds(last.id, state.newest) > 0) state.newest = last.id;
}

/**
 * The rates, this worker's share, every 10 ms by the time gone since the last
 * slot (a timer late on a busy machine sends more, not fewer), fractions carried:
 * messages into a weighted random sending membership, reads of a random room with
 * unread messages by a random device of a random user (up to the newest message
 * that device was shown), `rooms` requests from a random device.
 */
function traffic(messages: number, reads: number, lists: number): void {
  clearInterval(timer);
  timer = undefined;
  if (messages + reads + lists <= 0) return;
  const carry = [Math.random(), Math.random(), Math.random()];
  const devices = users.flatMap((u) => u.devices);
  let last = performance.now();
  timer = setInterval(() => {
    const at = performance.now();
    const seconds = (at - last) / 1000;
    last = at;
    carry[0]! += messages * seconds;
    carry[1]! += reads * seconds;
    carry[2]! += lists * seconds;
    for (; carry[0]! >= 1; carry[0]! -= 1) if (senders.length > 0) sendOne(pickSender());
    for (; carry[1]! >= 1; carry[1]! -= 1) readOne();
    for (; carry[2]! >= 1; carry[2]! -= 1) if (devices.length > 0) listOne(devices[Math.floor(Math.random() * devices.length)]!);
  }, 10);
}

function pickSender(): Sender {
  const x = Math.random() * senders.at(-1)!.upTo;
  let lo = 0;
  let hi = senders.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (senders[mid]!.upTo > x) hi = mid;
    else lo = mid + 1;
  }
  return senders[lo]!;
}

function track<T>(work: Promise<T>): void {
  inFlight.add(work);
  void work.finally(() => inFlight.delete(work));
}

function sendOne({ device, room }: Sender): void {
  if (!device.client.open) return;
  counters.sent++;
  const text = makeText(device.user.index, ++seq, plan.size);
  const sentAt = now();
  track(device.client.request('send', `"room":${JSON.stringify(room)},"text":"${text}"`, 's').then((answer) => {
    if (answer.error) {
      counters.failed++;
      return;
    }
    counters.acked++;
    histograms.ack.recordMs(now() - sentAt);
    const id = (JSON.parse(answer.raw) as { id: string }).id;
    acked.push([room, id, device.user.index]);
  }));
}

function readOne(): void {
  for (let attempt = 0; attempt < 5; attempt++) {
    const user = users[Math.floor(Math.random() * users.length)];
    if (user === undefined || user.rooms.length === 0) return;
    const device = user.devices[Math.floor(Math.random() * user.devices.length)]!;
    const room = user.rooms[Math.floor(Math.random() * user.rooms.length)]!;
    const state = device.rooms.get(room);
    if (state?.newest === undefined || !state.count || !device.client.open) continue;
    counters.reads++;
    const sentAt = now();
    const upTo = state.newest;
    track(device.client.request('read', `"room":${JSON.stringify(room)},"id":"${upTo}"`, 'r').then((answer) => {
      if (answer.error) {
        readsFailed++;
        return;
      }
      histograms.read.recordMs(now() - sentAt);
      const position = /"read":"([^"]+)"/.exec(answer.raw)?.[1];
      const known = user.read.get(room);
      if (position !== undefined && (known === undefined || compareIds(position, known) > 0)) user.read.set(room, position);
    }));
    return;
  }
}

function listOne(device: Device): void {
  if (!device.client.open) return;
  counters.lists++;
  const sentAt = now();
  track(device.client.request('rooms', '', 'l').then((answer) => {
    if (answer.error) listsFailed++;
    else histograms.list.recordMs(now() - sentAt);
  }));
}

/** Waits for the answers of everything sent (at most `timeoutMs`). */
async function drain(timeoutMs: number): Promise<ConversationReply> {
  const until = Date.now() + timeoutMs;
  while (inFlight.size > 0 && Date.now() < until) await Promise.race([sleep(50), ...inFlight]);
  return { type: 'stopped', unanswered: inFlight.size };
}

/** Every device's whole room list (pages of the most), then the report. */
async function final(): Promise<ConversationReply> {
  const devices: DeviceView[] = [];
  await inBatches(users.flatMap((u) => u.devices), plan.batch, async (device) => {
    const view: DeviceView = { user: device.user.index, device: device.index, unread: {}, listed: plan.openRooms ? null : {}, delivered: {}, trail: {} };
    for (const [room, state] of device.rooms) {
      if (state.count !== undefined) view.unread[room] = state.count;
      if (state.trail.length > 0) {
        view.trail[room] = state.trail.map(([count, read, last, answer]) => `${count} (read ${read}${last === undefined ? '' : `, last ${last}`}${answer ? ', answering its read' : ''})`).join(' then ');
      }
      if (state.joined) view.delivered[room] = state.delivered;
    }
    if (!plan.openRooms) view.listed = await roomList(device);
    devices.push(view);
  });
  tick();
  const reads: Array<[number, string, string]> = [];
  for (const u of users) for (const [room, id] of u.read) reads.push([u.index, room, id]);
  const report: ConversationFinal = {
    acked, reads, devices, unanswered: inFlight.size, readsFailed, listsFailed,
    histograms: {
      ack: histograms.ack.toJSON(), delivery: histograms.delivery.toJSON(), unread: histograms.unread.toJSON(),
      list: histograms.list.toJSON(), read: histograms.read.toJSON(),
    },
  };
  return { type: 'final', report };
}

async function roomList(device: Device): Promise<Record<string, number> | null> {
  const listed: Record<string, number> = {};
  let before: string | undefined;
  for (let page = 0; page < 1000; page++) {
    const answer = await device.client.request('rooms', `"limit":${ROOMS_MAX_LIMIT}${before === undefined ? '' : `,"before":${JSON.stringify(before)}`}`, 'f');
    if (answer.error) return null;
    const frame = JSON.parse(answer.raw) as RoomsFrame;
    for (const entry of frame.rooms) listed[entry.room] = entry.unread;
    if (frame.next === undefined) return listed;
    before = frame.next;
  }
  return null;
}

function tick(): void {
  const cpu = process.cpuUsage(lastCpu);
  lastCpu = process.cpuUsage();
  const elapsed = Math.max(1, Date.now() - lastTickAt);
  lastTickAt = Date.now();
  const connected = users.reduce((n, u) => n + u.devices.filter((d) => d.client.open).length, 0);
  send({ type: 'tick', connected, counters, cpuPercent: ((cpu.user + cpu.system) / 1000 / elapsed) * 100 });
  counters = emptyConversationCounters();
}

/** `work` on each item, at most `batch` at a time. */
async function inBatches<T>(items: T[], batch: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(batch, items.length) }, async () => {
    while (next < items.length) await work(items[next++]!);
  }));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
