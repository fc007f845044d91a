import type { WebhookObserver, WebhookStatus } from '@chat/webhooks';
import { CLUSTER_EVENT_TYPES } from '@chat/broker';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

const DELIVERY_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800];

/** The webhook dispatcher's metrics; the backlog gauges are cluster-wide (take their max across nodes). */
export function createWebhookMetrics(registry: Registry | null, status: () => WebhookStatus): WebhookObserver {
  if (registry === null) return { delivered() {}, failed() {}, retried() {}, dropped() {}, backlog() {} };
  const delivered = new Counter({
    name: 'chat_webhook_deliveries_total', help: 'Webhook events delivered (answered 2xx), by event type.', labelNames: ['type'], registers: [registry],
  });
  for (const type of CLUSTER_EVENT_TYPES) delivered.inc({ type }, 0);
  const failed = new Counter({
    name: 'chat_webhook_failures_total', help: 'Webhook attempts that failed, by reason (status: not 2xx; timeout; network).',
    labelNames: ['reason'], registers: [registry],
  });
  for (const reason of ['status', 'timeout', 'network']) failed.inc({ reason }, 0);
  const retried = new Counter({ name: 'chat_webhook_retries_total', help: 'Webhook attempts that were retries of a failed one.', registers: [registry] });
  const dropped = new Counter({
    name: 'chat_webhook_dropped_total', help: 'Webhook events given up on after WEBHOOK_GIVE_UP_AFTER_S of failures.', registers: [registry],
  });
  const latency = new Histogram({
    name: 'chat_webhook_delivery_seconds', help: 'From an event happening to its delivery being answered 2xx (retries included).',
    buckets: DELIVERY_BUCKETS, registers: [registry],
  });
  new Gauge({
    name: 'chat_webhook_pending_events', help: 'Undelivered webhook events in the whole cluster, at this node\'s latest sweep.', registers: [registry],
    collect() { this.set(status().pending); },
  });
  new Gauge({
    name: 'chat_webhook_oldest_pending_seconds', help: 'Age of the oldest undelivered webhook event in the cluster, at this node\'s latest sweep.',
    registers: [registry],
    collect() { this.set(status().oldestAgeSeconds); },
  });
  return {
    delivered: (type, seconds) => {
      delivered.inc({ type });
      latency.observe(seconds);
    },
    failed: (reason) => failed.inc({ reason }),
    retried: () => retried.inc(),
    dropped: () => dropped.inc(),
    backlog: () => {}, // read by the gauges at scrape time
  };
}
