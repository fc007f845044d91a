import type { TransportName } from './transport.js';

/** What one worker process runs. */
export interface WorkerPlan {
  transport: TransportName;
  urls: string[];
  clients: Array<{ index: number; room: string; url: string; sender: boolean }>;
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
}

export type WorkerCommand =
  | { type: 'start'; plan: WorkerPlan }
  | { type: 'rate'; perSender: number }
  | { type: 'stop-sending' }
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
}

export interface Tick {
  type: 'tick';
  connected: number;
  counters: Counters;
  latency: { counts: number[]; max: number };
  cpuPercent: number;
}

export interface FinalReport {
  /** sender -> the last seq each receiver here got from it */
  lastSeen: Record<string, number[]>;
  /** sender -> highest acknowledged seq (senders of this worker) */
  maxAcked: Record<string, number>;
  senderRooms: Record<string, string>;
  receiversByRoom: Record<string, number>;
  connect: { counts: number[]; max: number };
  /** Resend mode: sender -> acknowledged seqs, and per receiver the seqs it got, as [first, last] runs. */
  resend?: { acked: Record<string, Array<[number, number]>>; received: Record<string, Array<Array<[number, number]>>> };
}

export type WorkerMessage = Tick | { type: 'ready' } | { type: 'final'; report: FinalReport } | { type: 'error'; message: string };
