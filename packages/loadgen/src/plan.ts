import type { ClientTransport, TransportName } from './transport.js';

/** One simulated user: one connection, joined to `rooms` in order. */
export interface ClientAssignment {
  /** Unique in the run; the user id is `u<index>`. */
  index: number;
  url: string;
  rooms: string[];
  /** Rooms this client also sends into, each with the sender key its messages carry (unique in the run). */
  sends: Array<{ room: string; key: number }>;
  /** Its transport, where the run mixes them (else the plan's). */
  transport?: ClientTransport;
}

/** What one worker process runs. */
export interface WorkerPlan {
  transport: TransportName;
  urls: string[];
  clients: ClientAssignment[];
  /**
   * Connections held for join probes (big-room): connected at start, each joining
   * and leaving the probed room in turn; user ids `p<index>`.
   */
  probes: Array<{ index: number; url: string; transport?: ClientTransport }>;
  /** Connections opened per second by this worker (0: as fast as possible). */
  rampPerSec: number;
  join: boolean;
  size: number;
  /** Fraction of receivers that reconnect each second (churn). */
  churnPerSec: number;
  checkRoomOrder: boolean;
  localAddresses: string[];
  /** Users of the client library, with keyed sends resent after reconnects. */
  resend: boolean;
  /** SSE clients POST to the gateway after their stream's in `urls`: every POST relayed. */
  sseRelay: boolean;
}

export type WorkerCommand =
  | { type: 'start'; plan: WorkerPlan }
  /** Connect (and join) every client of the plan whose index is below `upTo`; answered with `ready`. */
  | { type: 'open'; upTo: number }
  /** `joins` probe joins into `room` at `perSec` (each followed by its leave); answered with `probed`. */
  | { type: 'probe'; room: string; joins: number; perSec: number }
  | { type: 'rate'; perSender: number }
  | { type: 'stop-sending' }
  /** Send a tick now (everything counted so far), then `flushed`. */
  | { type: 'flush' }
  | { type: 'final' }
  | { type: 'exit' };

export interface Counters {
  sent: number;
  acked: number;
  failed: number;
  delivered: number;
  lost: number;
  duplicates: number;
  reordered: number;
  errors: number;
  reconnects: number;
  /** Frames received by members: per-user `presence`, and `occupancy` (rooms above the list limit). */
  presence: number;
  occupancy: number;
  /** Joins answered (fill, rejoins and probes) and leaves. */
  joins: number;
}

export interface Tick {
  type: 'tick';
  connected: number;
  counters: Counters;
  latency: { counts: number[]; max: number };
  /** Time from `join` to `joined` of this tick's joins (fill and probes). */
  joinLatency: { counts: number[]; max: number };
  /** Time from a `send` leaving the client (frame written, or queued for a POST) to its `ack`. */
  ackLatency: { counts: number[]; max: number };
  /** A mixed run: the same, per transport (by the receiver's for deliveries, the sender's for sends). */
  transports?: Partial<Record<ClientTransport, TransportTally>>;
  cpuPercent: number;
  /** The span `cpuPercent` was measured over. */
  elapsedMs: number;
}

/** One transport's share of a tick (mixed runs). */
export interface TransportTally {
  connected: number;
  sent: number;
  acked: number;
  failed: number;
  delivered: number;
  latency: { counts: number[]; max: number };
  ackLatency: { counts: number[]; max: number };
}

export interface FinalReport {
  /** sender key -> the last seq each receiver here got from it */
  lastSeen: Record<string, number[]>;
  /** sender key -> highest acknowledged seq (senders of this worker) */
  maxAcked: Record<string, number>;
  /** sender key -> its room */
  senderRooms: Record<string, string>;
  /** room -> members of it held here */
  receiversByRoom: Record<string, number>;
  connect: { counts: number[]; max: number };
  /** Resend mode: sender key -> acknowledged seqs, and per receiver the seqs it got, as [first, last] runs. */
  resend?: { acked: Record<string, Array<[number, number]>>; received: Record<string, Array<Array<[number, number]>>> };
}

export interface ProbeReport {
  /** join -> joined of each probe. */
  latency: { counts: number[]; max: number };
  joins: number;
  failed: number;
}

export type WorkerMessage =
  | Tick
  | { type: 'started' }
  | { type: 'ready' }
  | { type: 'flushed' }
  | { type: 'probed'; report: ProbeReport }
  | { type: 'final'; report: FinalReport }
  | { type: 'error'; message: string };

export function emptyCounters(): Counters {
  return { sent: 0, acked: 0, failed: 0, delivered: 0, lost: 0, duplicates: 0, reordered: 0, errors: 0, reconnects: 0, presence: 0, occupancy: 0, joins: 0 };
}
