import { Registry } from 'prom-client';
import { readFileSync } from 'node:fs';
import { TestClient, uniquePrefix, waitFor } from '@chat/testkit';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { readyz, startGateway, type GatewayProcess } from './helpers/gateways.js';
import { scrape } from './helpers/metrics.js';
import { requireTool, run } from './helpers/tools.js';

const metricsUrl = (g: GatewayProcess) => {
  const listening = g.logs.find((l) => l.msg === 'listening')!;
  const port = (listening.metricsPort as number | undefined) ?? g.port;
  return `http://127.0.0.1:${port}/metrics`;
};

describe('metrics of two gateways after a scripted session', () => {
  let gw1: GatewayProcess;
  let gw2: GatewayProcess;
  const N = 5;

  beforeAll(async () => {
    const env = { REDIS_URL: inject('redisUrl'), REDIS_PREFIX: uniquePrefix('metrics') };
    gw1 = await startGateway({ ...env, NODE_ID: 'm1', METRICS_PORT: '0' });
    gw2 = await startGateway({ ...env, NODE_ID: 'm2' });
    await waitFor(async () => (await readyz(gw1)) === 200 && (await readyz(gw2)) === 200, { what: 'ready' });

    const a = await TestClient.connect(gw1.wsUrl, 'a');
    const b = await TestClient.connect(gw2.wsUrl, 'b');
    await a.request({ type: 'join', room: 'm' });
    await b.request({ type: 'join', room: 'm' });
    for (let i = 0; i < N; i++) await a.request({ type: 'send', room: 'm', text: `m${i}` });
    a.send('this is not json');
    await a.waitFor((f) => f.type === 'error');
    await b.until(() => b.messages('m').length === N, { what: 'all messages on b' });
    await a.close();
    await b.close();
  });
  afterAll(async () => {
    await Promise.all([gw1.stop(), gw2.stop()]);
  });

  it('count exactly what happened on each gateway', async () => {
    const expected1: Record<string, number> = {
      'chat_connections_opened_total{transport="ws"}': 1,
      'chat_connections_opened_total{transport="sse"}': 0,
      'chat_connections_closed_total{code="1000"}': 1,
      'chat_frames_received_total{type=\"join\",transport=\"ws\"}': 1,
      'chat_frames_received_total{type=\"send\",transport=\"ws\"}': N,
      'chat_frames_received_total{type=\"invalid\",transport=\"ws\"}': 1,
      'chat_frames_rejected_total{code="bad_request"}': 1,
      'chat_frames_rejected_total{code="rate_limited"}': 0,
      'chat_messages_accepted_total': N,
      'chat_deliveries_total': N,
      'chat_broker_publish_duration_seconds_count': N,
      'chat_relay_latency_seconds_count': N,
      'chat_connections{transport="ws"}': 0,
      'chat_rooms': 0,
      'chat_broker_up': 1,
    };
    const expected2: Record<string, number> = {
      'chat_connections_opened_total{transport="ws"}': 1,
      'chat_connections_opened_total{transport="sse"}': 0,
      'chat_connections_closed_total{code="1000"}': 1,
      'chat_frames_received_total{type=\"join\",transport=\"ws\"}': 1,
      'chat_frames_received_total{type=\"send\",transport=\"ws\"}': 0,
      'chat_frames_received_total{type=\"invalid\",transport=\"ws\"}': 0,
      'chat_messages_accepted_total': 0,
      'chat_deliveries_total': N,
      'chat_broker_publish_duration_seconds_count': 0,
      'chat_relay_latency_seconds_count': N,
      'chat_connections{transport="ws"}': 0,
    };
    for (const [gateway, expected] of [[gw1, expected1], [gw2, expected2]] as const) {
      await waitFor(async () => (await scrape(metricsUrl(gateway))).get('chat_connections{transport="ws"}') === 0, { what: 'connections closed' });
      const series = await scrape(metricsUrl(gateway));
      for (const [name, value] of Object.entries(expected)) expect(series.get(name), `${gateway.nodeId} ${name}`).toBe(value);
      // Local relay: every message crossed from acceptance to fan-out well within 2.5 s.
      expect(series.get('chat_relay_latency_seconds_bucket{le="2.5"}')).toBe(N);
    }
  });

  it('serve /metrics only on METRICS_PORT when it is set', async () => {
    expect(metricsUrl(gw1)).not.toContain(`:${gw1.port}/`);
    expect((await fetch(`${gw1.httpUrl}/metrics`)).status).toBe(404);
    expect((await fetch(`${gw2.httpUrl}/metrics`)).status).toBe(200);
  });

  it('pass promtool check metrics', async () => {
    requireTool('promtool', 'apt-get install prometheus');
    for (const gateway of [gw1, gw2]) {
      const text = await (await fetch(metricsUrl(gateway))).text();
      const result = await run('promtool', ['check', 'metrics'], { input: text });
      expect(result.output.trim()).toBe('');
      expect(result.status).toBe(0);
    }
  });

  it('include every metric the dashboard and the alert rules use (the gateway\'s, and the archiver\'s)', async () => {
    const exposition = (await (await fetch(metricsUrl(gw1))).text()) + await archiverExposition() + await webhookExposition();
    const families = new Set([...exposition.matchAll(/^# TYPE (\S+)/gm)].map((m) => m[1]!));
    const sources = ['../grafana/dashboards/chat-gateway.json', '../prometheus/alerts.yml']
      .map((path) => readFileSync(new URL(path, import.meta.url), 'utf8'));
    const used = new Set(sources.flatMap((text) => [...text.matchAll(/\b((?:chat|nodejs|process)_[a-z0-9_]+)/g)].map((m) => m[1]!)));
    expect(used.size).toBeGreaterThan(10);
    for (const name of used) {
      const family = name.replace(/_(bucket|sum|count)$/, '');
      expect(families.has(name) || families.has(family), `${name} is not exported`).toBe(true);
    }
  });
});

/** What an archiver exposes, from its own metrics module (no Redis or PostgreSQL needed). */
async function archiverExposition(): Promise<string> {
  const { createMetrics } = await import('../services/archiver/dist/metrics.js');
  const registry = new Registry();
  createMetrics(registry, { lagSeconds: () => 0, pendingRooms: () => 0, redisUp: () => true, databaseUp: () => true });
  return registry.metrics();
}

/** What a gateway with webhooks on adds, from its webhook metrics module. */
async function webhookExposition(): Promise<string> {
  const { createWebhookMetrics } = await import('../services/gateway/dist/webhook-metrics.js');
  const registry = new Registry();
  const observer = createWebhookMetrics(registry, () => ({ pending: 3, oldestAgeSeconds: 1.5, failing: false }));
  observer.delivered('user.online', 0.02);
  observer.failed('timeout');
  return registry.metrics();
}

describe('webhook metrics', () => {
  it('pass promtool check metrics', async () => {
    requireTool('promtool', 'apt-get install prometheus');
    const result = await run('promtool', ['check', 'metrics'], { input: await webhookExposition() });
    expect(result.output.trim()).toBe('');
    expect(result.status).toBe(0);
  });
});

describe('an archiver\'s metrics', () => {
  it('pass promtool check metrics', async () => {
    requireTool('promtool', 'apt-get install prometheus');
    const result = await run('promtool', ['check', 'metrics'], { input: await archiverExposition() });
    expect(result.output.trim()).toBe('');
    expect(result.status).toBe(0);
  });
});

describe('metrics switched off', () => {
  it('serve no /metrics and still work', async () => {
    const gateway = await startGateway({ REDIS_URL: inject('redisUrl'), METRICS_ENABLED: 'false' });
    expect((await fetch(`${gateway.httpUrl}/metrics`)).status).toBe(404);
    const c = await TestClient.connect(gateway.wsUrl, 'x');
    await c.request({ type: 'join', room: 'off' });
    expect(await c.request({ type: 'send', room: 'off', text: 'hi' })).toMatchObject({ type: 'ack' });
    await c.close();
    await gateway.stop();
  });
});

describe('readiness during shutdown', () => {
  it('turns /readyz false at once on SIGTERM while existing clients are still served', async () => {
    const gateway = await startGateway({ REDIS_URL: inject('redisUrl'), SHUTDOWN_GRACE_MS: '1500' });
    await waitFor(async () => (await readyz(gateway)) === 200, { what: 'ready' });
    const client = await TestClient.connect(gateway.wsUrl, 'stays');
    await client.request({ type: 'join', room: 'grace' });
    process.kill(gateway.pid, 'SIGTERM');
    await waitFor(async () => (await readyz(gateway)) === 503, { what: 'not ready' });
    expect(await (await fetch(`${gateway.httpUrl}/readyz`)).json()).toMatchObject({ ready: false, draining: true });
    expect(await client.request({ type: 'send', room: 'grace', text: 'still served' })).toMatchObject({ type: 'ack' });
    await expect(TestClient.connect(gateway.wsUrl, 'newcomer')).rejects.toThrow(/503/);
    expect((await client.closed).code).toBe(1001);
    expect(await gateway.exited).toEqual({ code: 0, signal: null });
  });
});
