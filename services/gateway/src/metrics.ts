import { Counter, Gauge, Histogram, collectDefaultMetrics, type Registry } from 'prom-client';
import type { BrokerStats } from '@chat/broker';
import { CLIENT_FRAME_TYPES, ERROR_CODES } from '@chat/protocol';
import { TRANSPORTS, type TransportName } from './transports/frame-sink.js';

/**
 * A counter for hot paths: increments are plain additions, flushed into
 * prom-client when Prometheus scrapes (prom-client allocates on every inc).
 */
export class HotCounter<L extends string = never> {
  #pending = 0;
  readonly #byLabel = new Map<string, number>();

  /** `labels`: their names and known values (every combination is reported from the start). */
  constructor(registry: Registry | null, name: string, help: string, ...labels: Array<{ name: string; values: readonly string[] }>) {
    if (registry === null) return; // metrics off: increments go nowhere
    const self = this;
    const names = labels.map((l) => l.name);
    const labelsOf = (key: string) => Object.fromEntries(key.split(SEPARATOR).map((value, i) => [names[i]!, value]));
    const counter: Counter<string> = new Counter({
      name,
      help,
      labelNames: names,
      registers: [registry],
      collect() {
        if (self.#pending > 0) counter.inc(self.#pending);
        self.#pending = 0;
        for (const [key, n] of self.#byLabel) {
          if (n > 0) counter.inc(labelsOf(key), n);
          self.#byLabel.set(key, 0);
        }
      },
    });
    // Known label values exist from the start, so rate() sees their first increment.
    const combinations = labels.reduce<string[]>((keys, l) => keys.flatMap((k) => l.values.map((v) => (k === '' ? v : k + SEPARATOR + v))), ['']);
    if (labels.length > 0) for (const key of combinations) counter.inc(labelsOf(key), 0);
  }

  inc(n = 1): void {
    this.#pending += n;
  }

  incLabel(value: L | string, n = 1): void {
    this.#byLabel.set(value, (this.#byLabel.get(value) ?? 0) + n);
  }

  /** For a counter of two labels. */
  incLabels(first: string, second: string): void {
    this.incLabel(first + SEPARATOR + second);
  }
}

const SEPARATOR = '\u0000';

export interface GaugeSources {
  connections(transport: TransportName): number;
  rooms(): number;
  brokerUp(): boolean;
  brokerStats(): BrokerStats;
  devIdentity(): boolean;
}

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const CLOSE_CODES = ['1000', '1001', '1005', '1006', '1008', '1009', '1011', '1013', '4000', 'other'] as const;
const API_STATUSES = ['200', '201', '400', '401', '404', '405', '409', '413', '429', '500', '503'] as const;
const FRAME_LABELS = [...CLIENT_FRAME_TYPES, 'invalid'] as const;
const RESYNC_REASONS = ['trimmed', 'unproven', 'limit', 'lost', 'failed'] as const;
const REJOIN_RESULTS = ['recovered', 'gap'] as const;
export const SSE_POST_RESULTS = ['accepted', 'relayed', 'unknown_session', 'bad_request', 'too_large', 'unavailable'] as const;
export type SsePostResult = (typeof SSE_POST_RESULTS)[number];

/** What hot paths call to observe a duration; a no-op when metrics are off. */
export interface Observer {
  observe(value: number): void;
}

const ignore: Observer = { observe() {} };

export type Metrics = ReturnType<typeof createMetrics>;

/**
 * Every metric of a gateway, on an injected registry (two gateways in one
 * process must not collide). With `registry` null, metrics are off: the same
 * calls cost nothing, so their overhead can be measured.
 */
export function createMetrics(registry: Registry | null, sources: GaugeSources) {
  if (registry === null) return instruments(null, ignore, ignore, ignore);
  // The event-loop lag monitor samples with a timer; at its default 10 ms that timer alone was
  // about half of an idle gateway's CPU. 50 ms still shows every lag the alert cares about (100 ms).
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 50 });
  // Gauges named like counters (promtool rejects them); each repeats a gauge without the suffix.
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
    registry.removeSingleMetric(name);
  }
  new Gauge({
    name: 'chat_connections', help: 'Client connections open now, by transport (ws: WebSocket, sse: event stream).', labelNames: ['transport'], registers: [registry],
    collect() { for (const transport of TRANSPORTS) this.set({ transport }, sources.connections(transport)); },
  });
  new Gauge({
    name: 'chat_rooms', help: 'Rooms with at least one local member.', registers: [registry],
    collect() { this.set(sources.rooms()); },
  });
  new Gauge({
    name: 'chat_dev_identity_enabled', help: '1 when ?user= development identities are accepted (never in production).', registers: [registry],
    collect() { this.set(sources.devIdentity() ? 1 : 0); },
  });
  new Gauge({
    name: 'chat_broker_up', help: '1 while the broker serves commands and every subscription is live.', registers: [registry],
    collect() { this.set(sources.brokerUp() ? 1 : 0); },
  });
  new Gauge({
    name: 'chat_broker_subscriber_connections', help: 'Redis subscriber connections (one per Redis Cluster primary).', registers: [registry],
    collect() { this.set(sources.brokerStats().subscriberConnections); },
  });
  new Gauge({
    name: 'chat_broker_deaf_subscribers', help: 'Subscriber connections whose self-addressed probe is overdue (they hear nothing).', registers: [registry],
    collect() { this.set(sources.brokerStats().deafSubscribers); },
  });
  new Counter({
    name: 'chat_broker_probe_failures_total', help: 'Times a subscriber connection was found deaf and reconnected.', registers: [registry],
    collect() { this.reset(); this.inc(sources.brokerStats().probeFailures); },
  });
  new Counter({
    name: 'chat_replication_timeouts_total', help: 'Appends refused because REDIS_WAIT_REPLICAS replicas did not confirm them in time.', registers: [registry],
    collect() { this.reset(); this.inc(sources.brokerStats().replicationTimeouts); },
  });
  const brokerReconnects = new Counter({
    name: 'chat_broker_reconnects_total', help: 'Times the broker came back after being down.', registers: [registry],
  });
  const brokerPublishSeconds = new Histogram({
    name: 'chat_broker_publish_duration_seconds', help: 'Time to store and publish one room message.',
    buckets: LATENCY_BUCKETS, registers: [registry],
  });
  const postRelaySeconds = new Histogram({
    name: 'chat_sse_post_relay_seconds', help: 'From a POST /sse/send relayed to the gateway holding its stream to that gateway\'s answer.',
    buckets: LATENCY_BUCKETS, registers: [registry],
  });
  const relayLatencySeconds = new Histogram({
    name: 'chat_relay_latency_seconds',
    help: 'From acceptance of a message (on any node) to its local fan-out on this node.',
    buckets: LATENCY_BUCKETS, registers: [registry],
  });
  return instruments(registry, brokerPublishSeconds, relayLatencySeconds, postRelaySeconds, brokerReconnects);
}

function instruments(registry: Registry | null, brokerPublishSeconds: Observer, relayLatencySeconds: Observer, postRelaySeconds: Observer, brokerReconnects?: Counter) {
  return {
    registry,
    enabled: registry !== null,
    brokerPublishSeconds,
    relayLatencySeconds,
    postRelaySeconds,
    ssePosts: new HotCounter(registry, 'chat_sse_posts_total',
      'POST /sse/send answered here, by result: accepted (the stream is here), relayed (to the gateway holding it), unknown_session (404), bad_request, too_large, unavailable (503).',
      { name: 'result', values: SSE_POST_RESULTS }),
    brokerReconnects: { inc: () => brokerReconnects?.inc() },
    connectionsOpened: new HotCounter(registry, 'chat_connections_opened_total', 'Client connections accepted, by transport.',
      { name: 'transport', values: TRANSPORTS }),
    connectionsClosed: new HotCounter(registry, 'chat_connections_closed_total', 'Client connections closed, by close code.',
      { name: 'code', values: CLOSE_CODES }),
    framesReceived: new HotCounter(registry, 'chat_frames_received_total', 'Client frames received, by type ("invalid" when undecodable) and transport.',
      { name: 'type', values: FRAME_LABELS }, { name: 'transport', values: TRANSPORTS }),
    framesRejected: new HotCounter(registry, 'chat_frames_rejected_total', 'Client frames answered with an error, by error code.',
      { name: 'code', values: ERROR_CODES }),
    messagesAccepted: new HotCounter(registry, 'chat_messages_accepted_total', 'Room messages stored and acknowledged.'),
    messageChanges: new HotCounter(registry, 'chat_message_changes_total', 'Changes of messages stored and acknowledged, by kind (edit, delete, reaction).',
      { name: 'kind', values: ['edit', 'delete', 'reaction'] }),
    repeatedSends: new HotCounter(registry, 'chat_repeated_sends_total',
      'Sends and direct messages whose idempotency key was used before: answered with the first ack, not stored again.'),
    deliveries: new HotCounter(registry, 'chat_deliveries_total', 'Room message copies written to local sockets.'),
    backpressureCloses: new HotCounter(registry, 'chat_backpressure_closes_total',
      'Sockets closed (1013) because their send buffer stayed over SEND_BUFFER_BYTES.'),
    rateLimited: new HotCounter(registry, 'chat_rate_limited_total', 'Frames refused with rate_limited.'),
    directMessages: new HotCounter(registry, 'chat_direct_messages_total', 'Direct messages delivered to at least one node.'),
    unreadFrames: new HotCounter(registry, 'chat_unread_frames_total', 'unread frames written to local connections (members of members-only rooms, joined or not).'),
    conversationsRestored: new HotCounter(registry, 'chat_conversations_restored_total',
      'Members-only rooms this node wrote back from the archive after Redis came back without them.'),
    historyLosses: new HotCounter(registry, 'chat_history_losses_total',
      'Times this node found that a room\'s stream lost messages it had delivered (Redis restarted without them, failover onto a lagging replica).'),
    memberResyncs: new HotCounter(registry, 'chat_member_resyncs_total',
      'Room members closed with 1013 to rejoin with since, because they may have missed messages, by why (a gap kind, or failed).',
      { name: 'type', values: RESYNC_REASONS }),
    rejoins: new HotCounter(registry, 'chat_rejoins_total', 'Joins with since, by whether they were told recovered (every message) or a gap.',
      { name: 'type', values: REJOIN_RESULTS }),
    occupancyAnnouncements: new HotCounter(registry, 'chat_occupancy_announcements_total',
      'occupancy frames published to a room\'s local members (rooms above MEMBER_LIST_LIMIT, at most one a second per room, and at each crossing).'),
    apiRequests: new HotCounter(registry, 'chat_api_requests_total', 'Server API requests (/api), by HTTP status.',
      { name: 'status', values: API_STATUSES }),
  };
}

export function closeCodeLabel(code: number): string {
  const label = String(code);
  return (CLOSE_CODES as readonly string[]).includes(label) ? label : 'other';
}
