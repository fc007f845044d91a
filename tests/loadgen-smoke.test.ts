import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LoadReport, StormReport } from '@chat/loadgen';
import { waitFor } from '@chat/testkit';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { readyz, startCluster, type Cluster } from './helpers/gateways.js';

const cli = fileURLToPath(new URL('../packages/loadgen/dist/cli.js', import.meta.url));

/** A functional check of the load generator against three gateways: no timing is asserted. */
describe('load generator smoke run', () => {
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = await startCluster(3, inject('redisUrl'), { RATE_LIMIT_PER_SEC: '10000', RATE_LIMIT_BURST: '10000' });
    await waitFor(async () => (await Promise.all(cluster.gateways.map(readyz))).every((s) => s === 200), { what: 'ready' });
  });
  afterAll(async () => {
    await cluster.stop();
  });

  function load(...args: string[]): { status: number | null; report: LoadReport; output: string } {
    const out = join(mkdtempSync(join(tmpdir(), 'load-')), 'report.json');
    const urls = cluster.gateways.map((g) => g.wsUrl).join(',');
    const result = spawnSync(process.execPath, [cli, ...args, '--url', urls, '--json', out, '--quiet', '--workers', '2'], { encoding: 'utf8', timeout: 60_000 });
    return { status: result.status, report: JSON.parse(readFileSync(out, 'utf8')) as LoadReport, output: `${result.stdout}${result.stderr}` };
  }

  it('fans out to 50 clients over three gateways with nothing lost, duplicated or reordered', () => {
    const { status, report, output } = load('fanout', '--rooms', '5', '--members', '10', '--rate', '50', '--duration', '3');
    expect(status, output).toBe(0);
    const [step] = report.steps;
    expect(report.connected).toBe(50);
    expect(step!.acked).toBeGreaterThan(100);
    expect(step!.delivered).toBe(step!.acked * 10); // every acked message reached each of its room's 10 members
    expect([step!.lost, step!.duplicates, step!.reordered, step!.failed]).toEqual([0, 0, 0, 0]);
  });

  it('keeps every message through churn: clients reconnecting elsewhere and rejoining with since', () => {
    const { status, report, output } = load('churn', '--rooms', '3', '--members', '10', '--rate', '30', '--duration', '3', '--churn', '0.2');
    expect(status, output).toBe(0);
    const [step] = report.steps;
    expect(step!.reconnects).toBeGreaterThan(3);
    expect([step!.lost, step!.duplicates, step!.reordered]).toEqual([0, 0, 0]);
  });
});

describe('load generator storm scenario', () => {
  it('moves the clients of a SIGKILLed gateway to the other two and reports every one back, with nothing lost', async () => {
    const cluster = await startCluster(3, inject('redisUrl'), { RATE_LIMIT_PER_SEC: '10000', RATE_LIMIT_BURST: '10000' });
    try {
      await waitFor(async () => (await Promise.all(cluster.gateways.map(readyz))).every((s) => s === 200), { what: 'ready' });
      const [victim, ...others] = cluster.gateways;
      const out = join(mkdtempSync(join(tmpdir(), 'storm-')), 'report.json');
      const urls = [victim!, ...others].flatMap((g) => ['--url', g.wsUrl]);
      const result = spawnSync(process.execPath, [cli, 'storm', ...urls, '--kill', String(victim!.pid), '--clients', '300', '--rooms', '10',
        '--control-rooms', '2', '--control-members', '5', '--workers', '2', '--timeout', '30', '--json', out], { encoding: 'utf8', timeout: 90_000 });
      expect(result.status, `${result.stdout}${result.stderr}`).toBe(0);
      const report = JSON.parse(readFileSync(out, 'utf8')) as StormReport;
      expect(report).toMatchObject({ victims: 300, affected: 300, stillAway: 0, lost: 0, duplicated: 0, reordered: 0, gaps: 0 });
      expect(report.allBackMs).toBeGreaterThan(0);
      expect(Object.keys(report.nodes).sort()).toEqual(others.map((g) => g.nodeId).sort());
    } finally {
      await cluster.stop();
    }
  }, 120_000);
});
