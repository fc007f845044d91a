import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ConfigMap, Namespace, Secret, Service } from 'kubernetes-models/v1';
import { Deployment, StatefulSet } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { Ingress } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { PodMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { loadConfig } from '../services/gateway/dist/config.js';
import { startGateway, type GatewayProcess } from './helpers/gateways.js';
import { requireTool } from './helpers/tools.js';

/*
 * deploy/kubernetes as users render it (kubectl kustomize), validated against
 * the Kubernetes schemas of the kubernetes-models package, and checked against
 * the gateway's own settings so that ports, probes and shutdown times cannot
 * drift apart from the code.
 */
const root = fileURLToPath(new URL('../', import.meta.url));

interface Resource {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  'v1/ConfigMap': ConfigMap, 'v1/Namespace': Namespace, 'v1/Secret': Secret, 'v1/Service': Service,
  'apps/v1/Deployment': Deployment, 'apps/v1/StatefulSet': StatefulSet,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler, 'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'monitoring.coreos.com/v1/PodMonitor': PodMonitor, 'networking.k8s.io/v1/Ingress': Ingress,
};

function render(overlay: string): Resource[] {
  requireTool('kubectl', 'apt-get install kubectl (or kubernetes-client)');
  const result = spawnSync('kubectl', ['kustomize', `${root}deploy/kubernetes/${overlay}`], { encoding: 'utf8' });
  expect(result.status, result.stderr).toBe(0);
  return parseAllDocuments(result.stdout).map((d) => d.toJS() as Resource);
}

const find = (resources: Resource[], kind: string, name?: string): Resource => {
  const found = resources.find((r) => r.kind === kind && (name === undefined || r.metadata.name.startsWith(name)));
  if (found === undefined) throw new Error(`no ${kind} ${name ?? ''}`);
  return found;
};

type Container = {
  ports: Array<{ name: string; containerPort: number }>;
  readinessProbe: { httpGet: { path: string; port: string } };
  livenessProbe: { httpGet: { path: string; port: string } };
  lifecycle: { preStop: { exec: { command: string[] } } };
  envFrom: Array<{ configMapRef?: { name: string }; secretRef?: { name: string } }>;
  resources: { requests: Record<string, string>; limits: Record<string, string> };
  securityContext: { readOnlyRootFilesystem: boolean; allowPrivilegeEscalation: boolean };
};
type PodSpec = { terminationGracePeriodSeconds: number; securityContext: { runAsNonRoot: boolean }; containers: Container[] };
const podOf = (deployment: Resource) => (deployment.spec as { template: { metadata: { labels: Record<string, string> }; spec: PodSpec } }).template;

describe.each(['base', 'dev', 'monitoring', 'ingress-nginx'])('deploy/kubernetes/%s, rendered with kubectl kustomize', (overlay) => {
  it('holds only resources that validate against the Kubernetes schemas', () => {
    const resources = render(overlay);
    expect(resources.length).toBeGreaterThan(0);
    for (const resource of resources) {
      const Model = MODELS[`${resource.apiVersion}/${resource.kind}`];
      expect(Model, `a schema for ${resource.apiVersion} ${resource.kind}`).toBeDefined();
      expect(() => new Model!(resource as never).validate(), `${resource.kind} ${resource.metadata.name}`).not.toThrow();
    }
  });
});

describe('the gateway Deployment agrees with the gateway itself', () => {
  const resources = render('base');
  const deployment = find(resources, 'Deployment', 'chat-gateway');
  const pod = podOf(deployment);
  const container = pod.spec.containers[0]!;
  const configMap = find(resources, 'ConfigMap', 'chat-gateway-config') as Resource & { data: Record<string, string> };
  // What the pod's gateway process reads: the ConfigMap, plus a key as the Secret would give it.
  const env = { ...configMap.data, JWT_SECRET: 'k'.repeat(32) };
  const config = loadConfig(env);
  let gateway: GatewayProcess;

  beforeAll(async () => {
    gateway = await startGateway({ ...env, REDIS_URL: '', PORT: '0', METRICS_PORT: '0' });
  });
  afterAll(async () => {
    await gateway?.stop();
  });

  it('exposes the ports the gateway listens on, and the Service and PodMonitor use them by name', () => {
    const port = (name: string) => container.ports.find((p) => p.name === name)!.containerPort;
    expect(port('http')).toBe(config.port);
    expect(port('metrics')).toBe(config.metricsPort);
    expect(deployment.spec).toMatchObject({ template: { metadata: { annotations: { 'prometheus.io/port': String(config.metricsPort) } } } });
    const service = find(resources, 'Service', 'chat-gateway') as Resource & { spec: { selector: Record<string, string>; ports: Array<{ targetPort: string }> } };
    expect(service.spec.ports.map((p) => p.targetPort).sort()).toEqual(['http', 'metrics']);
    expect(pod.metadata.labels).toMatchObject(service.spec.selector);
    const monitor = find(render('monitoring'), 'PodMonitor') as Resource & { spec: { podMetricsEndpoints: Array<{ port: string; path: string }> } };
    expect(monitor.spec.podMetricsEndpoints[0]).toMatchObject({ port: 'metrics', path: '/metrics' });
  });

  it('probes paths the gateway answers: readiness on /readyz, liveness on /healthz', async () => {
    expect(container.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http' });
    expect(container.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'http' });
    for (const path of [container.readinessProbe.httpGet.path, container.livenessProbe.httpGet.path]) {
      expect((await fetch(`${gateway.httpUrl}${path}`)).status, path).toBe(200);
    }
  });

  it('waits in preStop at least SHUTDOWN_GRACE_MS, and gives the drain its whole DRAIN_TIMEOUT_MS before the SIGKILL', () => {
    const [command, seconds] = container.lifecycle.preStop.exec.command;
    expect(command).toBe('sleep');
    const preStopMs = Number(seconds) * 1000;
    expect(preStopMs).toBeGreaterThanOrEqual(Math.max(config.shutdownGraceMs, 5000));
    expect(config.shutdownGraceMs + config.drainSpreadMs).toBeLessThan(config.drainTimeoutMs);
    expect(pod.spec.terminationGracePeriodSeconds * 1000).toBeGreaterThan(preStopMs + config.drainTimeoutMs);
  });

  it('runs as non-root on a read-only root filesystem, with requests and limits, its secrets from a Secret', () => {
    expect(pod.spec.securityContext.runAsNonRoot).toBe(true);
    expect(container.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
    expect(Object.keys(container.resources.requests).sort()).toEqual(['cpu', 'memory']);
    expect(Object.keys(container.resources.limits).sort()).toEqual(['cpu', 'memory']);
    expect(container.envFrom).toEqual(expect.arrayContaining([{ secretRef: { name: 'chat-gateway-secrets', optional: true } }]));
    expect(config.devIdentity).toBe(false);
  });

  it('keeps a PodDisruptionBudget and an autoscaler on the same pods', () => {
    const pdb = find(resources, 'PodDisruptionBudget') as Resource & { spec: { selector: { matchLabels: Record<string, string> } } };
    expect(pod.metadata.labels).toMatchObject(pdb.spec.selector.matchLabels);
    const hpa = find(resources, 'HorizontalPodAutoscaler') as Resource & { spec: { scaleTargetRef: { kind: string; name: string }; minReplicas: number } };
    expect(hpa.spec.scaleTargetRef).toMatchObject({ kind: 'Deployment', name: deployment.metadata.name });
    expect(hpa.spec.minReplicas).toBeGreaterThanOrEqual(2);
  });
});

describe('the ingress-nginx overlay carries WebSockets and the fallback transport', () => {
  const resources = render('ingress-nginx');
  const ingress = find(resources, 'Ingress') as Resource & {
    spec: { rules: Array<{ http: { paths: Array<{ path: string; pathType: string; backend: { service: { name: string; port: { name?: string } } } }> } }> };
  };
  const annotations = ingress.metadata.annotations ?? {};
  const annotation = (name: string) => annotations[`nginx.ingress.kubernetes.io/${name}`];
  const config = loadConfig({ ...(find(resources, 'ConfigMap', 'chat-gateway-config') as Resource & { data: Record<string, string> }).data, JWT_SECRET: 'k'.repeat(32) });
  // The contract: a client gives an event stream up after 45 s without a byte.
  const CLIENT_DEAD_AFTER_S = 45;

  it('sends every path to the Service\'s http port, never the metrics port', () => {
    const service = find(resources, 'Service', 'chat-gateway') as Resource & { spec: { ports: Array<{ name: string }> } };
    const paths = ingress.spec.rules.flatMap((r) => r.http.paths);
    expect(paths).toEqual([expect.objectContaining({ path: '/', pathType: 'Prefix' })]); // /ws, /sse, /sse/send, /api and the page
    for (const path of paths) {
      expect(path.backend.service.name).toBe(service.metadata.name);
      expect(path.backend.service.port.name).toBe('http');
    }
    expect(service.spec.ports.map((p) => p.name)).toContain('http');
  });

  it('keeps idle sockets and quiet event streams open past the gateway\'s pings and heartbeats, and past the clients\' 45 s', () => {
    for (const name of ['proxy-read-timeout', 'proxy-send-timeout']) {
      const seconds = Number(annotation(name));
      expect(seconds, name).toBeGreaterThan(config.idleTimeoutSec);
      expect(seconds, name).toBeGreaterThan(CLIENT_DEAD_AFTER_S);
      expect(seconds * 1000, name).toBeGreaterThan(3 * config.sseHeartbeatMs);
    }
  });

  it('passes events on unbuffered and uncompressed, with no affinity of any kind', () => {
    expect(annotation('proxy-buffering')).toBe('off');
    for (const key of Object.keys(annotations)) expect(key).not.toMatch(/affinity|session-cookie|upstream-hash-by/);
    for (const value of Object.values(annotations)) expect(value).not.toMatch(/\bgzip\s+on\b|brotli\s+on\b/);
  });
});
