import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig } from '../services/gateway/dist/config.js';
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

  it('is accepted by docker-compose config', () => {
    requireTool('docker-compose', 'apt-get install docker-compose');
    const result = run('docker-compose', ['-f', `${root}docker-compose.yml`, 'config', '-q']);
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
  it('passes haproxy -c, with a certificate from deploy/tls/make-dev-cert.sh where compose mounts one', () => {
    requireTool('haproxy', 'apt-get install haproxy');
    requireTool('openssl', 'apt-get install openssl');
    const dir = mkdtempSync(join(tmpdir(), 'chat-tls-'));
    try {
      const made = run('sh', [`${root}deploy/tls/make-dev-cert.sh`, dir, 'chat.example.test']);
      expect(made.status, made.output).toBe(0);
      const config = join(dir, 'haproxy.cfg');
      writeFileSync(config, read('deploy/haproxy/haproxy.cfg').replaceAll('/usr/local/etc/haproxy/certs/', `${dir}/`));
      const result = run('haproxy', ['-c', '-f', config]);
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
