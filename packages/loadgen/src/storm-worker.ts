import { ChatClient, type WebSocketLike } from '@chat/client';
import WebSocket from 'ws';

/**
 * A storm worker: holds its share of the library clients a reconnect storm
 * moves, and reports when each was cut off and when it was back (rejoined with
 * `since`, and whether that recovered everything). Driven over IPC by storm.ts.
 */
export interface StormVictim {
  user: string;
  room: string;
  urls: string[];
  /** A member of the room on a gateway that is not disrupted: counted apart, and not in `nodes`. */
  bystander?: boolean;
}

/** Member frames received since the mark by a group of clients: totals and the most one client got. */
export interface NoticeCounts {
  clients: number;
  presence: number;
  occupancy: number;
  maxPresence: number;
  maxOccupancy: number;
}

export type StormWorkerCommand =
  | { type: 'start'; victims: StormVictim[]; batch: number }
  | { type: 'mark' }
  | { type: 'status' }
  | { type: 'verify'; acked: Record<string, string[]> }
  | { type: 'close' };

export interface StormStatus {
  type: 'status';
  /** Cut off since the mark. */
  affected: number;
  /** Affected and not back yet: not connected, or not rejoined since its last cut. */
  pending: number;
  /** ms after the mark of each affected client's last rejoin. */
  rejoinedAfterMs: number[];
  /** Rejoins answered recovered: false. */
  gaps: number;
  /** Victims per gateway now. */
  nodes: Record<string, number>;
  /** presence and occupancy frames since the mark, to the victims and to the bystanders. */
  notices: { victims: NoticeCounts; bystanders: NoticeCounts };
}

export type StormWorkerMessage =
  | { type: 'ready'; connected: number }
  | StormStatus
  | { type: 'verified'; lost: number; duplicated: number; reordered: number }
  | { type: 'error'; message: string };

interface Tracked {
  client: ChatClient;
  room: string;
  bystander: boolean;
  seen: string[];
  cutAt?: number;
  backAt?: number;
  presence: number;
  occupancy: number;
}

const tracked: Tracked[] = [];
let markAt = Number.POSITIVE_INFINITY;
let gaps = 0;

const send = (message: StormWorkerMessage): void => void process.send!(message);

function track(victim: StormVictim): Tracked {
  const client = new ChatClient({
    // WebSocket only: a storm's slow welcomes must not turn its victims into SSE clients.
    url: victim.urls, user: victim.user, queueLimit: 10, transports: ['websocket'],
    webSocket: (u) => new WebSocket(u, { perMessageDeflate: false }) as unknown as WebSocketLike,
  });
  const entry: Tracked = { client, room: victim.room, bystander: victim.bystander ?? false, seen: [], presence: 0, occupancy: 0 };
  client.on('message', (m) => entry.seen.push(m.id));
  client.on('presence', () => { if (Date.now() >= markAt) entry.presence++; });
  client.on('occupancy', () => { if (Date.now() >= markAt) entry.occupancy++; });
  client.on('state', (state) => {
    if (state === 'reconnecting' && Date.now() >= markAt) entry.cutAt = Date.now();
  });
  client.on('joined', (_frame, info) => {
    if (!info.resumed || entry.cutAt === undefined) return;
    entry.backAt = Date.now();
    if (info.gap) gaps++;
  });
  return entry;
}

async function start(victims: StormVictim[], batch: number): Promise<void> {
  for (let i = 0; i < victims.length; i += batch) {
    const slice = victims.slice(i, i + batch).map(track);
    tracked.push(...slice);
    await Promise.all(slice.map(async (t) => {
      await t.client.connect();
      await t.client.join(t.room);
    }));
  }
  send({ type: 'ready', connected: tracked.length });
}

function status(): StormStatus {
  const affected = tracked.filter((t) => t.cutAt !== undefined);
  const nodes: Record<string, number> = {};
  for (const t of tracked) {
    if (t.bystander) continue;
    const node = t.client.state === 'connected' ? t.client.welcome!.node : '(away)';
    nodes[node] = (nodes[node] ?? 0) + 1;
  }
  const back = (t: Tracked) => t.client.state === 'connected' && t.backAt !== undefined && t.backAt >= t.cutAt!;
  return {
    type: 'status',
    affected: affected.length,
    pending: affected.filter((t) => !back(t)).length,
    rejoinedAfterMs: affected.filter(back).map((t) => t.backAt! - markAt),
    gaps,
    nodes,
    notices: { victims: notices(tracked.filter((t) => !t.bystander)), bystanders: notices(tracked.filter((t) => t.bystander)) },
  };
}

function notices(group: Tracked[]): NoticeCounts {
  const counts: NoticeCounts = { clients: group.length, presence: 0, occupancy: 0, maxPresence: 0, maxOccupancy: 0 };
  for (const t of group) {
    counts.presence += t.presence;
    counts.occupancy += t.occupancy;
    counts.maxPresence = Math.max(counts.maxPresence, t.presence);
    counts.maxOccupancy = Math.max(counts.maxOccupancy, t.occupancy);
  }
  return counts;
}

/** Each client must have every acknowledged message of its room once, in order (all were sent after it joined). */
function verify(acked: Record<string, string[]>): StormWorkerMessage {
  let lost = 0;
  let duplicated = 0;
  let reordered = 0;
  for (const t of tracked) {
    const expected = acked[t.room] ?? [];
    const wanted = new Set(expected);
    const seen = new Set(t.seen);
    duplicated += t.seen.length - seen.size;
    const got = expected.filter((id) => seen.has(id));
    lost += expected.length - got.length;
    const order = [...seen].filter((id) => wanted.has(id));
    if (order.some((id, i) => id !== got[i])) reordered++;
  }
  return { type: 'verified', lost, duplicated, reordered };
}

process.on('message', (command: StormWorkerCommand) => {
  switch (command.type) {
    case 'start':
      void start(command.victims, command.batch).catch((err: unknown) => send({ type: 'error', message: String(err) }));
      break;
    case 'mark':
      markAt = Date.now();
      gaps = 0;
      for (const t of tracked) { t.cutAt = undefined; t.backAt = undefined; t.presence = 0; t.occupancy = 0; }
      break;
    case 'status':
      send(status());
      break;
    case 'verify':
      send(verify(command.acked));
      break;
    case 'close':
      for (const t of tracked) t.client.close();
      setTimeout(() => process.exit(0), 100);
      break;
  }
});
