import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, TestClient, uniquePrefix, waitFor } from '@chat/testkit';
import { describe, expect, inject, it } from 'vitest';
import { startGateway } from './helpers/gateways.js';
import { requireTool, run } from './helpers/tools.js';

const promDir = fileURLToPath(new URL('../prometheus/', import.meta.url));

describe('Prometheus configuration', () => {
  it('passes promtool: config, rules and the rules unit tests', async () => {
    requireTool('promtool', 'apt-get install prometheus');
    for (const args of [['check', 'config', 'prometheus.yml'], ['check', 'rules', 'alerts.yml'], ['test', 'rules', 'alerts.test.yml']]) {
      const result = await run('sh', ['-c', `cd '${promDir}' && promtool ${args.join(' ')}`]);
      expect(result.status, result.output).toBe(0);
    }
  });
});

describe('a real Prometheus server', () => {
  it('scrapes two gateways: up == 1 for both and messages counted', async () => {
    requireTool('prometheus', 'apt-get install prometheus');
    const env = { REDIS_URL: inject('redisUrl'), REDIS_PREFIX: uniquePrefix('prom'), METRICS_PORT: '0' };
    const gateways = await Promise.all([startGateway({ ...env, NODE_ID: 'p1' }), startGateway({ ...env, NODE_ID: 'p2' })]);
    const targets = gateways.map((g) => `127.0.0.1:${g.logs.find((l) => l.msg === 'listening')!.metricsPort}`);
    const dir = mkdtempSync(join(tmpdir(), 'prom-'));
    const port = await freePort();
    writeFileSync(join(dir, 'prometheus.yml'), [
      'global: { scrape_interval: 1s }',
      'scrape_configs:',
      '  - job_name: chat-gateway',
      `    static_configs: [{ targets: [${targets.map((t) => `'${t}'`).join(', ')}] }]`,
    ].join('\n'));
    const prometheus = spawn('prometheus', [
      `--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn',
    ], { stdio: 'ignore' });
    const query = async (q: string) => {
      const res = await fetch(`http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(q)}`);
      const body = (await res.json()) as { data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> } };
      return body.data.result;
    };
    try {
      const client = await TestClient.connect(gateways[0]!.wsUrl, 'counted');
      await client.request({ type: 'join', room: 'prom' });
      for (let i = 0; i < 3; i++) await client.request({ type: 'send', room: 'prom', text: `m${i}` });
      await client.close();

      const up = await waitFor(async () => {
        const result = await query('up{job="chat-gateway"} == 1');
        return result.length === 2 ? result : null;
      }, { timeoutMs: 30_000, intervalMs: 250, what: 'up == 1 for both gateways' });
      expect(up.map((r) => r.metric.instance).sort()).toEqual([...targets].sort());
      const accepted = await waitFor(async () => {
        const [result] = await query('sum(chat_messages_accepted_total{job="chat-gateway"})');
        return result && Number(result.value[1]) > 0 ? Number(result.value[1]) : null;
      }, { timeoutMs: 30_000, intervalMs: 250, what: 'accepted messages' });
      expect(accepted).toBe(3);
    } finally {
      prometheus.kill('SIGTERM');
      await new Promise((resolve) => prometheus.once('exit', resolve));
      rmSync(dir, { recursive: true, force: true });
      await Promise.all(gateways.map((g) => g.stop()));
    }
  });
});
