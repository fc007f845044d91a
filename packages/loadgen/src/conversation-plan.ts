/** What the conversations coordinator and its worker processes tell each other over IPC. */

/** One simulated user: `devices` connections, device d on `urls[d]`. */
export interface ConversationUser {
  /** Unique in the run. */
  index: number;
  name: string;
  urls: string[];
}

/** A direct conversation this worker's user opens (`open` with the other user) from its first device. */
export interface DirectOpen {
  key: number;
  user: number;
  with: string;
}

/** A room of one of this worker's users, once its name is known. */
export interface Membership {
  user: number;
  room: string;
  /** The device that joins the room (and may send into it), or -1: none joins, the user only gets `unread`. */
  joinDevice: number;
  /** Share of all messages this membership sends (0: never sends). */
  weight: number;
}

export interface ConversationWorkerPlan {
  users: ConversationUser[];
  size: number;
  /** Open rooms, every device joined: no member lists, no counts (the baseline). */
  openRooms: boolean;
  /** Connections opened at once. */
  batch: number;
}

export type ConversationCommand =
  | { type: 'start'; plan: ConversationWorkerPlan }
  /** Open these direct conversations; answered with `opened`. */
  | { type: 'open'; opens: DirectOpen[] }
  /**
   * The rooms of this worker's users: join where asked, then wait until every device has its first
   * `unread` for each of its user's rooms (members-only: a gateway counts the room for it); `settled`.
   */
  | { type: 'rooms'; memberships: Membership[]; timeoutMs: number }
  /** Messages, reads and `rooms` requests per second, this worker's share; 0 stops them. */
  | { type: 'traffic'; messages: number; reads: number; lists: number }
  /** Stop the traffic and wait (at most `timeoutMs`) for every request's answer; `stopped`. */
  | { type: 'stop'; timeoutMs: number }
  | { type: 'flush' }
  /** Ask every device for its whole room list, then report everything; `final`. */
  | { type: 'final' }
  | { type: 'exit' };

export interface ConversationCounters {
  sent: number;
  acked: number;
  failed: number;
  /** `message` frames of room messages (joined connections). */
  delivered: number;
  /** `unread` frames (every member's connections). */
  unreads: number;
  reads: number;
  lists: number;
  /** Error frames without a request of ours, and connections closed under us. */
  errors: number;
}

export interface HistogramData { counts: number[]; max: number }

export interface ConversationTick {
  type: 'tick';
  connected: number;
  counters: ConversationCounters;
  cpuPercent: number;
}

/** One device's view at the end: counts by room from its latest `unread`, and from its room list. */
export interface DeviceView {
  user: number;
  device: number;
  /** room -> count of the latest `unread` this connection got. */
  unread: Record<string, number>;
  /** room -> `unread` of its entry in the final `rooms` pages; null when the pages could not be read. */
  listed: Record<string, number> | null;
  /** Joined rooms: room -> `message` frames received. */
  delivered: Record<string, number>;
  /** room -> its last few `unread` frames, oldest first, for the report of a mismatch. */
  trail: Record<string, string>;
}

export interface ConversationFinal {
  /** Every acknowledged message of this worker's senders: [room, id, user index]. */
  acked: Array<[string, string, number]>;
  /** The newest position each read of this worker's users was answered with: [user index, room, id]. */
  reads: Array<[number, string, string]>;
  devices: DeviceView[];
  /** Requests without an answer when the worker stopped waiting (sends, reads, lists). */
  unanswered: number;
  /** Reads and `rooms` requests answered with an error. */
  readsFailed: number;
  listsFailed: number;
  histograms: { ack: HistogramData; delivery: HistogramData; unread: HistogramData; list: HistogramData; read: HistogramData };
}

export type ConversationReply =
  | ConversationTick
  | { type: 'started'; connected: number; failed: number }
  | { type: 'opened'; rooms: Array<[number, string]>; failed: number }
  | { type: 'settled'; joinsFailed: number; missing: number }
  | { type: 'stopped'; unanswered: number }
  | { type: 'flushed' }
  | { type: 'final'; report: ConversationFinal }
  | { type: 'error'; message: string };

export function emptyConversationCounters(): ConversationCounters {
  return { sent: 0, acked: 0, failed: 0, delivered: 0, unreads: 0, reads: 0, lists: 0, errors: 0 };
}
