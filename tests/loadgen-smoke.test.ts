import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LoadReport } from '@chat/loadgen';
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
