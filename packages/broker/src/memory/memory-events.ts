import { randomBytes } from 'node:crypto';
import type { ClusterEventType, EventRecording } from '../cluster-events.js';
import type { ClaimedEvents, EventFeed, PendingEvent, StreamBacklog } from '../event-feed.js';

/** The one stream of a single process, with its lease: what the event streams are to Redis. */
export class MemoryEventLog {
  static readonly STREAM = 'events';
  readonly entries: PendingEvent[] = [];
  lease: { owner: string; until: number } | undefined;
  readonly #wakes = new Set<(stream: string) => void>();
  #sequence = 0;

  append(body: string): void {
    this.entries.push({ entry: `${Date.now()}-${this.#sequence++}`, body });
    if (this.entries.length === 1) for (const wake of this.#wakes) queueMicrotask(() => wake(MemoryEventLog.STREAM));
  }

  onWake(listener: (stream: string) => void): void {
    this.#wakes.add(listener);
  }
}

/** Records one node's events into the log, as the Redis scripts do, with ids unique per process. */
export class MemoryEventRecorder {
  readonly #types: ReadonlySet<ClusterEventType>;
  readonly #prefix = randomBytes(4).toString('hex');
  #calls = 0;

  constructor(private readonly log: MemoryEventLog, recording: EventRecording | undefined) {
    this.#types = new Set(recording?.types ?? []);
  }

  record(type: ClusterEventType, data: Record<string, string> | string): void {
    if (!this.#types.has(type)) return;
    const json = typeof data === 'string' ? data : JSON.stringify(data);
    this.log.append(`{"id":"${this.#prefix}.${(++this.#calls).toString(36)}.1","type":"${type}","ts":${Date.now()},"data":${json}}`);
  }
}

/** The EventFeed of a single process. */
export class MemoryEventFeed implements EventFeed {
  constructor(private readonly log: MemoryEventLog) {}

  get up(): boolean {
    return true;
  }

  async listen(onStream: (stream: string) => void): Promise<void> {
    this.log.onWake(onStream);
  }

  async backlog(): Promise<StreamBacklog[]> {
    const first = this.log.entries[0];
    return first === undefined ? [] : [{ stream: MemoryEventLog.STREAM, pending: this.log.entries.length, oldestAt: Number(first.entry.split('-')[0]) }];
  }

  async claim(_stream: string, owner: string, leaseMs: number, limit: number): Promise<ClaimedEvents | { heldForMs: number }> {
    const now = Date.now();
    const { lease } = this.log;
    if (lease !== undefined && lease.owner !== owner && lease.until > now) return { heldForMs: lease.until - now };
    this.log.lease = { owner, until: now + leaseMs };
    return { events: this.log.entries.slice(0, limit), pending: this.log.entries.length };
  }

  async ack(_stream: string, owner: string, entry: string): Promise<number | null> {
    if (this.log.lease?.owner !== owner) return null;
    const at = this.log.entries.findIndex((e) => e.entry === entry);
    if (at >= 0) this.log.entries.splice(at, 1);
    if (this.log.entries.length === 0) this.log.lease = undefined;
    return this.log.entries.length;
  }

  async release(_stream: string, owner: string): Promise<void> {
    if (this.log.lease?.owner === owner) this.log.lease = undefined;
  }
}
