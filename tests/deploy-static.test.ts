import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, startChild, waitFor } from '@chat/proc';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { localHaproxyConfig } from '../deploy/native/haproxy-config.mjs';
import { createMetrics as createArchiverMetrics } from '../services/archiver/dist/metrics.js';
import { loadConfig } from '../services/gateway/dist/config.js';
import { createMetrics as createGatewayMetrics } from '../services/gateway/dist/metrics.js';
import { createWebhookMetrics } from '../services/gateway/dist/webhook-metrics.js';
import { requireTool, run } from './helpers/tools.js';

const root = fileURLToPath(new URL('../', import.meta.url));
const read = (path: string) => readFileSync(`${root}${path}`, 'utf8');

interface ComposeService {
  image?: string;
  build?: unknown;
  command?: string[];
  profiles?: string[];
  ports?: string[];
  environment?: Record<string, string>;
  healthcheck?: { test: string[] };
  depends_on?: Record<string, { condition: string }>;
  deploy?: { replicas?: number };
  volumes?: string[];
}

/** The files as docker-compose resolves them (variables substituted, overrides merged). */
function resolved(files: string[], env: Record<string, string> = {}): { services: Record<string, ComposeService>; volumes?: Record<string, unknown> } {
  requireTool('docker-compose', 'apt-get install docker-compose');
  const result = spawnSync('docker-compose', [...files.flatMap((f) => ['-f', `${root}${f}`]), 'config'],
    { encoding: 'utf8', env: { ...process.env, REDIS_APPENDFSYNC: '', REDIS_WAIT_REPLICAS: '', ...env } });
  expect(result.status, `${result.stdout}${result.stderr}`).toBe(0);
  return parse(result.stdout) as { services: Record<string, ComposeService>; volumes?: Record<string, unknown> };
}

const flagOf = (service: ComposeService, flag: string) => service.command![service.command!.indexOf(flag) + 1];

describe('docker-compose.yml', () => {
  const compose = parse(read('docker-compose.yml')) as { services: Record<string, ComposeService> };
  const { services } = compose;

  it('is accepted by docker-compose config', async () => {
    requireTool('docker-compose', 'apt-get install docker-compose');
    const result = await run('docker-compose', ['-f', `${root}docker-compose.yml`, 'config', '-q']);
    expect(result.status, result.output).toBe(0);
  });

  it('has Redis, three gateways behind a load balancer on 8080, PostgreSQL and archivers, Prometheus on 9090 and Grafana on 3000', () => {
    expect(Object.keys(services).sort()).toEqual(['archiver', 'gateway', 'grafana', 'lb', 'postgres', 'prometheus', 'redis', 'tls-init']);
    expect(services.gateway!.deploy?.replicas).toBe(3);
    expect(services.gateway!.build).toBeDefined();
    expect(services.gateway!.environment?.REDIS_URL).toBe('redis://redis:6379');
    expect(services.lb!.ports).toContain('8080:8080');
    expect(services.prometheus!.ports).toContain('9090:9090');
    expect(services.grafana!.ports).toContain('3000:3000');
  });

  it('keeps Redis durable by default: the append-only file on a named volume, fsynced every second or, if asked, before every ack', () => {
    const byDefault = resolved(['docker-compose.yml']);
    const redis = byDefault.services.redis!;
    expect(flagOf(redis, '--appendonly')).toBe('yes');
    expect(flagOf(redis, '--appendfsync')).toBe('everysec');
    expect(flagOf(redis, '--dir')).toBe('/data');
    expect(redis.volumes?.some((v) => String(v).startsWith('redis-data:/data'))).toBe(true);
    expect(byDefault.volumes).toHaveProperty('redis-data');
    expect(byDefault.services.gateway!.environment?.REDIS_WAIT_REPLICAS).toBe('0');
    const onDisk = resolved(['docker-compose.yml'], { REDIS_APPENDFSYNC: 'always' });
    expect(flagOf(onDisk.services.redis!, '--appendfsync')).toBe('always');
  });

  it('keeps the archive in PostgreSQL on a named volume, written by archivers from the gateways\' image, read by the gateways', () => {
    const byDefault = resolved(['docker-compose.yml']);
    const { postgres, archiver, gateway } = byDefault.services as Record<string, ComposeService>;
    expect(postgres!.volumes?.some((v) => String(v).startsWith('postgres-data:/var/lib/postgresql/data'))).toBe(true);
    expect(byDefault.volumes).toHaveProperty('postgres-data');
    expect(postgres!.healthcheck?.test.join(' ')).toContain('pg_isready');
    expect(archiver!.image).toBe(gateway!.image);
    expect(archiver!.command).toEqual(['node', 'services/archiver/dist/main.js']);
    expect(archiver!.environment?.DATABASE_URL).toBe(gateway!.environment?.DATABASE_URL);
    expect(archiver!.environment?.DATABASE_URL).toMatch(/^postgres:\/\/[^@]+@postgres:5432\//);
    for (const service of [archiver!, gateway!]) expect(service.depends_on?.postgres?.condition).toBe('service_healthy');
    const prometheus = parse(read('prometheus/prometheus.yml')) as { scrape_configs: Array<{ job_name: string; dns_sd_configs?: Array<{ names: string[]; port: number }> }> };
    expect(prometheus.scrape_configs.find((j) => j.job_name === 'chat-archiver')!.dns_sd_configs![0])
      .toMatchObject({ names: ['archiver'], port: Number(archiver!.environment!.PORT) });
  });

  it('starts in the right order on health, with healthchecks where others wait', () => {
    const waitsFor = (service: string, on: string) => services[service]!.depends_on?.[on]?.condition;
    expect(waitsFor('gateway', 'redis')).toBe('service_healthy');
    expect(waitsFor('lb', 'gateway')).toBe('service_healthy');
    expect(waitsFor('prometheus', 'gateway')).toBe('service_healthy');
    expect(waitsFor('grafana', 'prometheus')).toBe('service_healthy');
    for (const name of ['redis', 'gateway', 'prometheus']) expect(services[name]!.healthcheck?.test.length, name).toBeGreaterThan(0);
  });

  it('provisions Grafana with anonymous viewing, the datasource and the dashboard', () => {
    const grafana = services.grafana!;
    expect(grafana.environment?.GF_AUTH_ANONYMOUS_ENABLED).toBe('true');
    expect(grafana.volumes).toEqual(expect.arrayContaining([
      './grafana/provisioning:/etc/grafana/provisioning:ro', './grafana/dashboards:/var/lib/grafana/dashboards:ro']));
    const datasource = parse(read('grafana/provisioning/datasources/prometheus.yml')) as { datasources: Array<{ url: string; uid: string }> };
    expect(datasource.datasources[0]).toMatchObject({ url: 'http://prometheus:9090', uid: 'prometheus' });
    const provider = parse(read('grafana/provisioning/dashboards/chat.yml')) as { providers: Array<{ options: { path: string } }> };
    expect(provider.providers[0]!.options.path).toBe('/var/lib/grafana/dashboards');
    const dashboard = JSON.parse(read('grafana/dashboards/chat-gateway.json')) as { panels: Array<{ datasource?: { uid: string } }> };
    for (const panel of dashboard.panels) if (panel.datasource) expect(panel.datasource.uid).toBe('prometheus');
  });

  it('gives a stopping gateway more time than its drain takes before Docker kills it', () => {
    const gateway = services.gateway! as ComposeService & { stop_grace_period: string };
    const drain = Object.fromEntries(Object.entries(gateway.environment!).filter(([k]) => /^(SHUTDOWN_GRACE_MS|DRAIN_)/.test(k)));
    const config = loadConfig(drain);
    const graceMs = Number(/^(\d+)s$/.exec(gateway.stop_grace_period)![1]) * 1000;
    expect(config.shutdownGraceMs + config.drainSpreadMs).toBeLessThan(config.drainTimeoutMs);
    expect(graceMs).toBeGreaterThan(config.drainTimeoutMs);
  });

  it('agrees with the load balancer and Prometheus on service names and ports', () => {
    const haproxy = read('deploy/haproxy/haproxy.cfg');
    expect(haproxy).toMatch(/server-template \S+ \S+ gateway:8080 check resolvers docker/);
    expect(haproxy).toMatch(/^\s*bind :8080$/m);
    const prometheus = parse(read('prometheus/prometheus.yml')) as { scrape_configs: Array<{ job_name: string; dns_sd_configs?: Array<{ names: string[]; port: number }> }> };
    const job = prometheus.scrape_configs.find((j) => j.job_name === 'chat-gateway')!;
    expect(job.dns_sd_configs![0]).toMatchObject({ names: ['gateway'], port: Number(services.gateway!.environment!.METRICS_PORT) });
  });
});

describe('docker-compose.redis-cluster.yml (override: a Redis Cluster instead of one Redis)', () => {
  const nodes = [1, 2, 3, 4, 5, 6].map((n) => `redis-node-${n}`);
  let merged: Record<string, ComposeService> | undefined;
  /** Both files as Compose combines them: docker-compose's own merge, not ours. */
  const services = (): Record<string, ComposeService> =>
    (merged ??= resolved(['docker-compose.yml', 'docker-compose.redis-cluster.yml']).services);

  it('is accepted by docker-compose config on top of docker-compose.yml', () => {
    expect(Object.keys(services()).sort()).toEqual(
      ['archiver', 'gateway', 'grafana', 'lb', 'postgres', 'prometheus', 'redis', 'redis-cluster-init', 'tls-init', ...nodes].sort());
  });

  it('has six cluster-mode nodes, each announcing its own service name, with a healthcheck', () => {
    for (const name of nodes) {
      const node = services()[name]!;
      const flag = (f: string) => node.command![node.command!.indexOf(f) + 1];
      expect(node.image, name).toBe('redis:7-bookworm');
      expect(node.command![0], name).toBe('redis-server');
      expect(flag('--cluster-enabled'), name).toBe('yes');
      expect(flag('--port'), name).toBe('6379');
      expect(flag('--cluster-announce-hostname'), name).toBe(name);
      expect(flag('--cluster-preferred-endpoint-type'), name).toBe('hostname');
      expect(flag('--save'), name).toBe('');
      expect(flag('--appendonly'), name).toBe('yes');
      expect(flag('--appendfsync'), name).toBe('everysec');
      expect(flag('--dir'), name).toBe('/data');
      expect(node.volumes?.some((v) => String(v).startsWith(`${name}-data:/data`)), name).toBe(true);
      expect(node.healthcheck?.test, name).toEqual(['CMD', 'redis-cli', 'ping']);
      expect(node.profiles, name).toBeUndefined();
    }
  });

  it('creates the cluster once all six are healthy, only if it is not up already, and waits for cluster_state:ok', () => {
    const init = services()['redis-cluster-init']!;
    expect(init.image).toBe('redis:7-bookworm');
    for (const name of nodes) expect(init.depends_on?.[name]?.condition, name).toBe('service_healthy');
    const script = init.command!.join(' ');
    expect(script).toMatch(/redis-cli --cluster create .* --cluster-replicas 1 --cluster-yes/);
    for (const name of nodes) expect(script).toContain(name);
    expect(script.match(/cluster_state/g)?.length).toBeGreaterThanOrEqual(2); // checked before creating, and waited for
  });

  it('points the gateways at all six nodes, with no REDIS_URL, once the cluster is up', () => {
    const gateway = services().gateway!;
    expect(gateway.environment?.REDIS_URL ?? '').toBe('');
    expect(gateway.environment?.REDIS_CLUSTER_NODES?.split(',').sort()).toEqual(nodes.map((n) => `${n}:6379`).sort());
    expect(gateway.depends_on?.['redis-cluster-init']?.condition).toBe('service_completed_successfully');
  });

  it('depends on no service that profiles disable (Compose v2 refuses that; docker-compose v1 does not check)', () => {
    const all = services();
    for (const [name, service] of Object.entries(all)) {
      if (service.profiles) continue;
      for (const dependency of Object.keys(service.depends_on ?? {})) expect(all[dependency]?.profiles, `${name} -> ${dependency}`).toBeUndefined();
    }
  });
});

describe('deploy/haproxy/haproxy.cfg', () => {
  it('passes haproxy -c, with a certificate from deploy/tls/make-dev-cert.sh where compose mounts one', async () => {
    requireTool('haproxy', 'apt-get install haproxy');
    requireTool('openssl', 'apt-get install openssl');
    const dir = mkdtempSync(join(tmpdir(), 'chat-tls-'));
    try {
      const made = await run('sh', [`${root}deploy/tls/make-dev-cert.sh`, dir, 'chat.example.test']);
      expect(made.status, made.output).toBe(0);
      const config = join(dir, 'haproxy.cfg');
      writeFileSync(config, read('deploy/haproxy/haproxy.cfg').replaceAll('/usr/local/etc/haproxy/certs/', `${dir}/`));
      const result = await run('haproxy', ['-c', '-f', config]);
      expect(result.status, result.output).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('serves TLS on 8443 from the file compose mounts, with HSTS, and keeps plain 8080', () => {
    const haproxy = read('deploy/haproxy/haproxy.cfg');
    expect(haproxy).toMatch(/^\s*bind :8443 ssl crt \/usr\/local\/etc\/haproxy\/certs\/chat\.pem/m);
    expect(haproxy).toMatch(/Strict-Transport-Security/);
    expect(haproxy).toMatch(/ssl-min-ver TLSv1\.2/);
    const lb = (parse(read('docker-compose.yml')) as { services: Record<string, ComposeService> }).services.lb!;
    expect(lb.ports).toEqual(expect.arrayContaining(['8080:8080', '8443:8443']));
    expect(lb.volumes).toEqual(expect.arrayContaining(['${TLS_DIR:-./.tls}:/usr/local/etc/haproxy/certs:ro']));
  });
});

/** The contract's fallback transport: a client gives an event stream up after 45 s without a byte. */
const CLIENT_GIVES_UP_MS = 45_000;

/** The directives of one HAProxy section (`defaults`, `backend gateways`...), without comments or blank lines. */
function directives(config: string, header: string): string[] {
  const lines = config.split('\n');
  const start = lines.findIndex((l) => l.trim() === header);
  expect(start, `a section "${header}"`).toBeGreaterThanOrEqual(0);
  const out: string[] = [];
  for (const line of lines.slice(start + 1)) {
    if (/^[^\s#]/.test(line)) break; // the next section
    const directive = line.replace(/#.*$/, '').trim().replace(/\s+/g, ' ');
    if (directive !== '') out.push(directive);
  }
  return out;
}

/** Every directive of a configuration, in every section. */
const allDirectives = (config: string) => config.split('\n').map((l) => l.replace(/#.*$/, '').trim()).filter((l) => l !== '');

/** An HAProxy time ("75s", "1h", "500ms", "5000") in milliseconds. */
function haproxyMs(value: string): number {
  const [, n, unit] = /^(\d+)(us|ms|s|m|h|d)?$/.exec(value)!;
  return Number(n) * ({ us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[unit ?? 'ms'] ?? NaN);
}

const timeoutOf = (lines: string[], name: string) => haproxyMs(lines.find((l) => l.startsWith(`timeout ${name} `))!.split(' ')[2]!);

describe('deploy/haproxy/haproxy.cfg and the fallback transport (GET /sse, POST /sse/send)', () => {
  const config = read('deploy/haproxy/haproxy.cfg');
  const defaults = directives(config, 'defaults');
  const backend = directives(config, 'backend gateways');
  const gateway = loadConfig({});

  it('keeps a quiet event stream open past the heartbeats and past the clients\' 45 s, whatever `timeout server` the rest gets', () => {
    // A stream is a plain HTTP response: `timeout tunnel` never applies to it; `timeout server` does (measured on HAProxy 2.6).
    expect(backend).toContain('acl sse_stream path /sse');
    const rule = backend.find((l) => /^http-request set-timeout server \S+ if sse_stream$/.test(l));
    expect(rule, 'http-request set-timeout server ... if sse_stream').toBeDefined();
    const streamServerMs = haproxyMs(rule!.split(' ')[3]!);
    for (const [what, ms] of [['timeout server for /sse', streamServerMs], ['timeout client', timeoutOf(defaults, 'client')]] as const) {
      expect(ms, what).toBeGreaterThan(CLIENT_GIVES_UP_MS);
      expect(ms, what).toBeGreaterThanOrEqual(3 * gateway.sseHeartbeatMs);
    }
  });

  it('passes events on at once and never compresses them', () => {
    expect(backend).toContain('option http-no-delay');
    for (const line of allDirectives(config)) expect(line).not.toMatch(/^compression\s+type\b.*text\/event-stream/);
  });

  it('has no stickiness of any kind, and never sends a POST twice', () => {
    expect(backend.filter((l) => l.startsWith('balance '))).toEqual(['balance leastconn']);
    for (const line of allDirectives(config)) {
      expect(line).not.toMatch(/^(cookie|stick|stick-table|stick-store|persist|hash-type|balance (source|uri|url_param|hdr|rdp-cookie))\b/);
      // Only requests that could not be sent at all are retried (a 503 from /sse/send "may or may not have been handled").
      if (line.startsWith('retry-on ')) expect(line).toMatch(/^retry-on( (none|conn-failure))+$/);
    }
  });
});

describe('the HAProxy configuration `npm run cluster` runs (deploy/native/haproxy-config.mjs)', () => {
  const compose = read('deploy/haproxy/haproxy.cfg');
  const servers = [{ name: 'gw-1', port: 18001 }, { name: 'gw-2', port: 18002 }];

  it('is compose\'s with local addresses: passes haproxy -c with and without TLS, with every timeout and the stream settings unchanged', async () => {
    requireTool('haproxy', 'apt-get install haproxy');
    requireTool('openssl', 'apt-get install openssl');
    const dir = mkdtempSync(join(tmpdir(), 'chat-cluster-haproxy-'));
    try {
      const made = await run('sh', [`${root}deploy/tls/make-dev-cert.sh`, dir, 'localhost']);
      expect(made.status, made.output).toBe(0);
      for (const tls of [undefined, { port: 18443, pem: join(dir, 'chat.pem') }]) {
        const generated = localHaproxyConfig({ lbPort: 18080, statsPort: 18404, servers, tls, maxconn: 1000 });
        const file = join(dir, 'haproxy.cfg');
        writeFileSync(file, generated);
        const result = await run('haproxy', ['-c', '-f', file]);
        expect(result.status, result.output).toBe(0);
        expect(directives(generated, 'defaults')).toEqual(directives(compose, 'defaults'));
        expect(directives(generated, 'backend gateways')).toEqual([
          ...directives(compose, 'backend gateways').filter((l) => !l.startsWith('server-template ')),
          ...servers.map((s) => `server ${s.name} 127.0.0.1:${s.port} check`),
        ]);
        expect(generated).toMatch(/^\s*bind 127\.0\.0\.1:18080$/m);
        expect(generated.includes('bind 127.0.0.1:18443 ssl'), 'the TLS frontend').toBe(tls !== undefined);
        expect(generated).not.toMatch(/resolvers|gateway:8080/);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('in front of two stand-in gateways: each event reaches an HTTP/1.1 client at once and uncompressed, and POSTs go to a gateway that does not hold the stream', async () => {
    requireTool('haproxy', 'apt-get install haproxy');
    // Stand-ins answering as the gateway does: /readyz, GET /sse with its headers, POST /sse/send.
    const origins = await Promise.all(['gw-1', 'gw-2'].map((name) => standInGateway(name)));
    const dir = mkdtempSync(join(tmpdir(), 'chat-cluster-haproxy-'));
    const lbPort = await freePort();
    const file = join(dir, 'haproxy.cfg');
    writeFileSync(file, localHaproxyConfig({ lbPort, statsPort: await freePort(), servers: origins.map((o) => ({ name: o.name, port: o.port })), tls: undefined, maxconn: 1000 }));
    const haproxy = startChild('haproxy', ['-f', file, '-db']);
    const lb = `http://127.0.0.1:${lbPort}`;
    try {
      await waitFor(async () => (await fetch(`${lb}/readyz`)).ok, { what: 'HAProxy', timeoutMs: 10_000 });
      const stream = await openStream(`${lb}/sse`);
      const holder = await waitFor(() => origins.find((o) => o.streams.size > 0), { what: 'the stream at a stand-in' });
      expect(stream.headers['content-encoding'], 'asked for gzip, got it uncompressed').toBeUndefined();

      // Without `option http-no-delay`, HAProxy 2.6 delivered each event about 200 ms late.
      const latencies: number[] = [];
      for (let i = 0; i < 5; i++) {
        const sentAt = holder.push();
        await waitFor(() => stream.events.length > i, { what: `event ${i}`, intervalMs: 1 });
        latencies.push(stream.receivedAt[i]! - sentAt);
      }
      latencies.sort((a, b) => a - b);
      expect(latencies[2], `event latencies ${latencies.join(', ')} ms`).toBeLessThan(100);

      // The stream's gateway has the one open connection: leastconn sends POSTs elsewhere, and nothing pins them to it.
      for (let i = 0; i < 4; i++) {
        const answer = await fetch(`${lb}/sse/send`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"session":"s","frames":[{"type":"ping"}]}' });
        expect(answer.status).toBe(202);
      }
      expect(origins.filter((o) => o !== holder).reduce((n, o) => n + o.posts, 0)).toBeGreaterThan(0);
      stream.close();
    } finally {
      await haproxy.stop();
      await Promise.all(origins.map((o) => o.close()));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

interface StandIn {
  name: string;
  port: number;
  streams: Set<http.ServerResponse>;
  posts: number;
  /** Writes an event to its streams; returns when. */
  push(): number;
  close(): Promise<void>;
}

/** A stand-in for a gateway: the headers the real one sends on GET /sse (services/gateway/src/transports/sse/routes.ts). */
async function standInGateway(name: string): Promise<StandIn> {
  const streams = new Set<http.ServerResponse>();
  const self = { name, port: 0, streams, posts: 0 } as StandIn;
  const server = http.createServer((req, res) => {
    if (req.url === '/sse') {
      res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache, no-transform', 'X-Accel-Buffering': 'no' });
      res.write(':\n\n');
      streams.add(res);
      req.on('close', () => streams.delete(res));
    } else if (req.url === '/sse/send' && req.method === 'POST') {
      self.posts += 1;
      req.resume();
      req.on('end', () => res.writeHead(202, { 'Content-Type': 'application/json' }).end('{"accepted":1}'));
    } else {
      res.writeHead(200).end('{"ready":true}'); // /readyz, the health check
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  self.port = (server.address() as AddressInfo).port;
  self.push = () => {
    const at = Date.now();
    for (const res of streams) res.write(`data: {"type":"pong","at":${at}}\n\n`);
    return at;
  };
  self.close = () => {
    for (const res of streams) res.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return self;
}

/** GET on HTTP/1.1, as a browser's EventSource would, accepting gzip; the events and when each arrived. */
function openStream(url: string): Promise<{ headers: http.IncomingHttpHeaders; events: string[]; receivedAt: number[]; close(): void }> {
  return new Promise((resolve, reject) => {
    const request = http.get(url, { agent: false, headers: { accept: 'text/event-stream', 'accept-encoding': 'gzip' } }, (res) => {
      const events: string[] = [];
      const receivedAt: number[] = [];
      let buffer = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffer += chunk;
        for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
          const event = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          if (event.startsWith('data: ')) {
            events.push(event.slice(6));
            receivedAt.push(Date.now());
          }
        }
      });
      resolve({ headers: res.headers, events, receivedAt, close: () => res.destroy() });
    });
    request.on('error', reject);
  });
}

interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: Array<{ expr: string }>;
}

/** What a gateway (webhooks on) and an archiver expose, from their own metrics modules: name -> the label sets of its series. */
async function exportedSeries(): Promise<Map<string, Array<Record<string, string>>>> {
  const gateway = new Registry();
  createGatewayMetrics(gateway, {
    connections: () => 0, rooms: () => 0, brokerUp: () => true, devIdentity: () => false,
    brokerStats: () => ({ subscriberConnections: 1, deafSubscribers: 0, probeFailures: 0, replicationTimeouts: 0 }),
  });
  createWebhookMetrics(gateway, () => ({ pending: 0, oldestAgeSeconds: 0, failing: false }));
  const archiver = new Registry();
  createArchiverMetrics(archiver, { lagSeconds: () => 0, pendingRooms: () => 0, redisUp: () => true, databaseUp: () => true });
  const series = new Map<string, Array<Record<string, string>>>();
  for (const line of (await gateway.metrics() + await archiver.metrics()).split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? \S+$/.exec(line);
    if (match === null) {
      const family = /^# TYPE (\S+)/.exec(line)?.[1]; // a family with no series yet (a labelled counter nobody touched)
      if (family !== undefined && !series.has(family)) series.set(family, []);
      continue;
    }
    const labels = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1]!, m[2]!]));
    series.set(match[1]!, [...(series.get(match[1]!) ?? []), labels]);
  }
  return series;
}

describe('grafana/dashboards/chat-gateway.json', () => {
  const dashboard = JSON.parse(read('grafana/dashboards/chat-gateway.json')) as { panels: Panel[] };
  const { panels } = dashboard;

  it('has unique panel ids, and panels that do not overlap', () => {
    expect(new Set(panels.map((p) => p.id)).size).toBe(panels.length);
    for (const [i, a] of panels.entries()) {
      for (const b of panels.slice(i + 1)) {
        const apart = a.gridPos.x + a.gridPos.w <= b.gridPos.x || b.gridPos.x + b.gridPos.w <= a.gridPos.x
          || a.gridPos.y + a.gridPos.h <= b.gridPos.y || b.gridPos.y + b.gridPos.h <= a.gridPos.y;
        expect(apart, `"${a.title}" and "${b.title}" overlap`).toBe(true);
      }
      expect(a.gridPos.x + a.gridPos.w, a.title).toBeLessThanOrEqual(24);
    }
  });

  it('queries only metrics, labels and label values that the gateway and the archiver export', async () => {
    const exported = await exportedSeries();
    const exprs = panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));
    expect(exprs.length).toBeGreaterThan(30);
    for (const { panel, expr } of exprs) {
      const used = [...expr.matchAll(/\b((?:chat|nodejs|process)_[a-z0-9_]+)(?:\{([^}]*)\})?/g)];
      for (const [, name, matchers] of used) {
        const series = exported.get(name!);
        expect(series, `${panel}: ${name} is not exported`).toBeDefined();
        for (const [, label, op, value] of (matchers ?? '').matchAll(/(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"/g)) {
          if (label === 'job' || label === 'instance') continue; // Prometheus adds them
          const found = op === '=' ? series!.some((s) => s[label!] === value) : series!.some((s) => label! in s);
          expect(found, `${panel}: ${name} has no series with ${label}${op}"${value}"`).toBe(true);
        }
      }
      for (const [, list] of expr.matchAll(/\bby \(([^)]*)\)/g)) {
        for (const label of list!.split(',').map((l) => l.trim()).filter((l) => !['le', 'instance', 'job'].includes(l))) {
          const has = used.some(([, name]) => exported.get(name!)!.some((s) => label in s));
          expect(has, `${panel}: no metric of "${expr}" has a label ${label}`).toBe(true);
        }
      }
    }
  });

  it('has a row for the fallback transport: connections and frames by transport, POST results, relay latency, 404s', () => {
    const start = panels.findIndex((p) => p.type === 'row' && p.title === 'Fallback transport (SSE)');
    expect(start).toBeGreaterThanOrEqual(0);
    const end = panels.findIndex((p, i) => i > start && p.type === 'row');
    const exprs = panels.slice(start + 1, end < 0 ? undefined : end).flatMap((p) => (p.targets ?? []).map((t) => t.expr));
    const some = (pattern: RegExp) => expect(exprs.some((e) => pattern.test(e)), String(pattern)).toBe(true);
    some(/by \(transport\) \(chat_connections\{/);
    some(/by \(transport\) \(rate\(chat_frames_received_total\{[^}]*\}\[1m\]\)\)/);
    some(/by \(result\) \(rate\(chat_sse_posts_total\{[^}]*\}\[1m\]\)\)/);
    some(/histogram_quantile\(0\.5, .*chat_sse_post_relay_seconds_bucket/);
    some(/histogram_quantile\(0\.99, .*chat_sse_post_relay_seconds_bucket/);
    some(/rate\(chat_sse_posts_total\{[^}]*result="unknown_session"[^}]*\}\[5m\]\)/);
  });
});

describe('Dockerfile', () => {
  const dockerfile = read('Dockerfile').replace(/\\\n/g, ' ');
  const stages = dockerfile.split(/^FROM /m).slice(1);
  const final = stages.at(-1)!;

  it('builds on Debian 12 (bookworm) Node 20 in every stage', () => {
    for (const stage of stages) expect(stage.split('\n')[0]).toMatch(/^node:20-bookworm/);
  });

  it('runs the compiled gateway as a non-root user in its final stage, with a healthcheck', () => {
    expect(final).toMatch(/^USER (node|[1-9]\d*)\s*$/m);
    expect(final).toMatch(/^CMD \["node", "services\/gateway\/dist\/main\.js"\]/m);
    expect(final).toMatch(/^HEALTHCHECK .*\/healthz/m);
    expect(final).toMatch(/^EXPOSE 8080/m);
    expect(final).not.toMatch(/^COPY (?!--from)/m); // nothing from the build context: no sources or tests
  });

  it('copies only paths that exist', () => {
    const copies = [...dockerfile.matchAll(/^COPY (?!--from)(.+)$/gm)].map((m) => m[1]!.trim().split(/\s+/).slice(0, -1));
    expect(copies.length).toBeGreaterThan(5);
    for (const sources of copies) for (const source of sources) expect(existsSync(`${root}${source}`), source).toBe(true);
  });

  it('keeps sources, tests and host builds out of the build context', () => {
    const ignored = read('.dockerignore').split('\n');
    for (const entry of ['**/node_modules', '**/dist', 'tests', '.git']) expect(ignored).toContain(entry);
  });
});
