import type { ClusterEventType, EventFeed, PendingEvent } from '@chat/broker';
import { WebhookSigner } from './signature.js';

export interface WebhookSettings {
  /** Where every event is POSTed. */
  url: string;
  /** Signs every delivery: `whsec_<base64>`, or a plain string of 16+ characters standing for its UTF-8 bytes (see webhookKey). */
  secret: string;
  /** Which events are recorded and delivered. */
  events: readonly ClusterEventType[];
  /** An attempt without an answer in this time failed. */
  timeoutMs: number;
  /** The first retry waits this long; each one after waits twice as long, up to retryMaxMs. */
  retryMinMs: number;
  retryMaxMs: number;
  /** An event still failing this long after it happened is dropped (counted, logged). */
  giveUpAfterMs: number;
  /** Streams delivered at once; within one stream, one event at a time, in order. */
  concurrency: number;
  /** How often every stream is checked for events whose wake-up was missed. */
  sweepMs: number;
  /** How long a stream stays with this node without renewal: a dead node's streams come free after it. */
  leaseMs: number;
  /** Most undelivered events a stream keeps. */
  backlogLimit: number;
}

export type FailureReason = 'status' | 'timeout' | 'network';

/** What the dispatcher reports, for metrics. */
export interface WebhookObserver {
  delivered(type: string, latencySeconds: number): void;
  failed(reason: FailureReason): void;
  retried(): void;
  dropped(): void;
  /** Cluster-wide, from the latest sweep. */
  backlog(pending: number, oldestAgeSeconds: number): void;
}

/** The subset of a pino logger the dispatcher writes to. */
export interface WebhookLog {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface WebhookDispatcherOptions {
  feed: EventFeed;
  settings: WebhookSettings;
  /** Unique per process: the lease holder's name. */
  owner: string;
  log: WebhookLog;
  observer: WebhookObserver;
}

export interface WebhookStatus {
  /** Undelivered events in the cluster at the latest sweep, and the age of the oldest. */
  pending: number;
  oldestAgeSeconds: number;
  /** The latest attempt of this node failed. */
  failing: boolean;
}

/** The head of an event's JSON, read without parsing its data. */
const EVENT_HEAD = /^\{"id":"([^"]+)","type":"([^"]+)","ts":(\d+),/;

/**
 * Delivers the cluster's recorded events to one URL, at least once, in order
 * per stream (so per room and per user), from whichever nodes run it: each
 * stream is leased to one node at a time and each event is acknowledged
 * (deleted) only after a 2xx. A failed attempt is retried with backoff while
 * the stream waits; a node that dies mid-delivery leaves its lease to expire
 * and another node delivers the event again, with the same id.
 */
export class WebhookDispatcher {
  readonly #o: WebhookDispatcherOptions;
  readonly #signer: WebhookSigner;
  /** stream -> when to look at it next (ms). */
  readonly #due = new Map<string, number>();
  readonly #active = new Set<Promise<void>>();
  readonly #working = new Set<string>();
  /** Streams whose lease this node may hold: released on stop. */
  readonly #leased = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  #sweeper: NodeJS.Timeout | undefined;
  #stopping = false;
  #wakeStop: (() => void) | undefined;
  readonly #stopped: Promise<void>;
  #status: WebhookStatus = { pending: 0, oldestAgeSeconds: 0, failing: false };

  constructor(options: WebhookDispatcherOptions) {
    this.#o = options;
    this.#signer = new WebhookSigner(options.settings.secret);
    this.#stopped = new Promise((resolve) => (this.#wakeStop = resolve));
  }

  get status(): WebhookStatus {
    return this.#status;
  }

  /** Listens for wake-ups (retried until it works) and sweeps now and every sweepMs. */
  start(): void {
    const listen = (): void => {
      this.#o.feed.listen((stream) => this.#schedule(stream, Date.now())).catch((err: unknown) => {
        this.#o.log.warn({ err }, 'webhook wake-ups not subscribed yet; retrying');
        if (!this.#stopping) setTimeout(listen, 1000).unref();
      });
    };
    listen();
    void this.#sweep();
    this.#sweeper = setInterval(() => void this.#sweep(), this.#o.settings.sweepMs);
    this.#sweeper.unref();
  }

  /** Finishes the attempts in flight (no new ones), then gives up this node's leases so another node goes on at once. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#wakeStop?.();
    clearInterval(this.#sweeper);
    clearTimeout(this.#timer);
    await Promise.all(this.#active);
    await Promise.all([...this.#leased].map((stream) => this.#o.feed.release(stream, this.#o.owner).catch(() => {})));
  }

  async #sweep(): Promise<void> {
    try {
      const backlog = await this.#o.feed.backlog();
      const now = Date.now();
      let pending = 0;
      let oldest = now;
      for (const { stream, pending: n, oldestAt } of backlog) {
        pending += n;
        oldest = Math.min(oldest, oldestAt);
        if (!this.#due.has(stream)) this.#schedule(stream, now);
      }
      this.#status = { ...this.#status, pending, oldestAgeSeconds: Math.max(0, now - oldest) / 1000 };
      this.#o.observer.backlog(pending, this.#status.oldestAgeSeconds);
    } catch (err) {
      this.#o.log.debug({ err }, 'webhook sweep failed');
    }
  }

  #schedule(stream: string, at: number): void {
    if (this.#stopping) return;
    const current = this.#due.get(stream);
    if (current === undefined || at < current) this.#due.set(stream, at);
    this.#pump();
  }

  /** Starts work on due streams up to the concurrency, and sets a timer for the next one due. */
  #pump(): void {
    clearTimeout(this.#timer);
    if (this.#stopping) return;
    const now = Date.now();
    let next = Infinity;
    for (const [stream, at] of this.#due) {
      if (this.#working.has(stream)) continue;
      if (at > now) {
        next = Math.min(next, at);
        continue;
      }
      if (this.#working.size >= this.#o.settings.concurrency) return;
      this.#due.delete(stream);
      this.#working.add(stream);
      const work = this.#work(stream).catch((err: unknown) => {
        this.#o.log.warn({ err, stream }, 'webhook delivery interrupted; retrying');
        this.#schedule(stream, Date.now() + this.#o.settings.retryMinMs);
      }).finally(() => {
        this.#working.delete(stream);
        this.#active.delete(work);
        this.#pump();
      });
      this.#active.add(work);
    }
    if (next !== Infinity) this.#timer = setTimeout(() => this.#pump(), next - now).unref();
  }

  /** Delivers the stream's events in order until it is empty, its lease is lost, or the node stops. */
  async #work(stream: string): Promise<void> {
    const { feed, owner, settings } = this.#o;
    const lease = new LeaseKeeper(feed, stream, owner, settings.leaseMs);
    try {
      while (!this.#stopping) {
        const claimed = await feed.claim(stream, owner, settings.leaseMs, 100);
        if ('heldForMs' in claimed) {
          this.#leased.delete(stream);
          return this.#schedule(stream, Date.now() + claimed.heldForMs + 50);
        }
        if (claimed.events.length === 0) {
          this.#leased.delete(stream);
          return;
        }
        this.#leased.add(stream);
        lease.start();
        for (const event of claimed.events) {
          if (!(await this.#deliver(event, lease))) return this.#schedule(stream, Date.now() + (lease.lost ? settings.leaseMs : 0));
          const left = await feed.ack(stream, owner, event.entry);
          if (left === null) return this.#schedule(stream, Date.now() + settings.leaseMs);
          if (left === 0) this.#leased.delete(stream);
        }
      }
    } finally {
      lease.stop();
    }
  }

  /** Posts one event until a 2xx (true), or gives up on it when too old (true: it is dropped), or stops or loses the lease (false). */
  async #deliver(event: PendingEvent, lease: LeaseKeeper): Promise<boolean> {
    const { settings, observer, log } = this.#o;
    const [, id = '', type = 'unknown', ts = '0'] = EVENT_HEAD.exec(event.body) ?? [];
    for (let attempt = 0; ; attempt++) {
      const failure = await this.#post(id, event.body);
      this.#status = { ...this.#status, failing: failure !== undefined };
      if (failure === undefined) {
        observer.delivered(type, Math.max(0, Date.now() - Number(ts)) / 1000);
        return true;
      }
      observer.failed(failure.reason);
      if (Date.now() - Number(ts) > settings.giveUpAfterMs) {
        observer.dropped();
        log.error({ id, type, attempts: attempt + 1 }, 'webhook event dropped: still failing after WEBHOOK_GIVE_UP_AFTER_S');
        return true;
      }
      const delay = Math.min(settings.retryMinMs * 2 ** attempt, settings.retryMaxMs);
      log.warn({ id, type, attempt: attempt + 1, retryInMs: delay, reason: failure.reason, detail: failure.detail }, 'webhook delivery failed; retrying');
      if (!(await this.#sleep(delay)) || lease.lost) return false;
      observer.retried();
    }
  }

  async #post(id: string, body: string): Promise<{ reason: FailureReason; detail: string } | undefined> {
    const { url, timeoutMs } = this.#o.settings;
    try {
      const response = await fetch(url, {
        method: 'POST',
        body,
        headers: {
          'content-type': 'application/json',
          'user-agent': 'chat-webhooks/1',
          ...this.#signer.headers(id, body),
        },
        signal: AbortSignal.timeout(timeoutMs),
      });
      await response.body?.cancel().catch(() => {}); // frees the connection for the next event
      return response.ok ? undefined : { reason: 'status', detail: `HTTP ${response.status}` };
    } catch (err) {
      const name = (err as Error).name;
      return { reason: name === 'TimeoutError' || name === 'AbortError' ? 'timeout' : 'network', detail: (err as Error).message };
    }
  }

  /** Resolves true after `ms`, or false at once when the dispatcher stops. */
  #sleep(ms: number): Promise<boolean> {
    return Promise.race([
      new Promise<boolean>((resolve) => setTimeout(() => resolve(!this.#stopping), ms).unref()),
      this.#stopped.then(() => false),
    ]);
  }
}

/** Renews a stream's lease while its events are being delivered (retries can outlast one lease). */
class LeaseKeeper {
  #timer: NodeJS.Timeout | undefined;
  lost = false;

  constructor(private readonly feed: EventFeed, private readonly stream: string, private readonly owner: string, private readonly leaseMs: number) {}

  start(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => {
      this.feed.claim(this.stream, this.owner, this.leaseMs, 1).then(
        (claimed) => { if ('heldForMs' in claimed) this.lost = true; },
        () => {}, // Redis away: the next renewal or the ack will tell
      );
    }, Math.max(50, Math.floor(this.leaseMs / 3)));
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}
