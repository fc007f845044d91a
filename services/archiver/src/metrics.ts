import { Counter, Gauge, Histogram, collectDefaultMetrics, Registry } from 'prom-client';

export interface ArchiverGauges {
  /** Age of the oldest acknowledged message not archived yet, in seconds (0: caught up). */
  lagSeconds(): number;
  /** Rooms known to have messages not archived yet. */
  pendingRooms(): number;
  redisUp(): boolean;
  databaseUp(): boolean;
}

export type ArchiverMetrics = ReturnType<typeof createMetrics>;

export function createMetrics(registry: Registry, gauges: ArchiverGauges) {
  collectDefaultMetrics({ register: registry });
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
    registry.removeSingleMetric(name);
  }
  const gauge = (name: string, help: string, value: () => number) =>
    new Gauge({ name, help, registers: [registry], collect() { this.set(value()); } });
  gauge('chat_archive_lag_seconds', 'Age of the oldest acknowledged room message not in the archive yet (0 when caught up).', gauges.lagSeconds);
  gauge('chat_archive_pending_rooms', 'Rooms with messages this archiver knows are not archived yet.', gauges.pendingRooms);
  gauge('chat_archive_redis_up', '1 while the archiver can read Redis.', () => (gauges.redisUp() ? 1 : 0));
  gauge('chat_archive_database_up', '1 while the archiver\'s last write to PostgreSQL worked.', () => (gauges.databaseUp() ? 1 : 0));
  return {
    rows: new Counter({ name: 'chat_archive_rows_total', help: 'Room messages written to the archive (new rows).', registers: [registry] }),
    writeErrors: new Counter({ name: 'chat_archive_write_errors_total', help: 'Archive writes that failed (they are retried).', registers: [registry] }),
    losses: new Counter({
      name: 'chat_archive_losses_total', registers: [registry],
      help: 'Rooms found to have lost messages before they were archived (trimmed or gone from Redis); recorded as a loss mark.',
    }),
    batchSeconds: new Histogram({
      name: 'chat_archive_batch_duration_seconds', help: 'Time to write one archive cycle (one transaction).', registers: [registry],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    }),
  };
}
