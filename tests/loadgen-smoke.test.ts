import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LoadReport, RoomsReport, StormReport } from '@chat/loadgen';
import { waitFor } from '@chat/testkit';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { readyz, startCluster, type Cluster } from './helpers/gateways.js';
import { run } from './helpers/tools.js';

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

  async function load<Report = LoadReport>(...args: string[]): Promise<{ status: number | null; report: Report; output: string }> {
    const out = join(mkdtempSync(join(tmpdir(), 'load-')), 'report.json');
    const urls = cluster.gateways.map((g) => g.wsUrl).join(',');
    const result = await run(process.execPath, [cli, ...args, '--url', urls, '--json', out, '--quiet', '--workers', '2'], { timeoutMs: 60_000 });
    return { status: result.status, report: JSON.parse(readFileSync(out, 'utf8')) as Report, output: result.output };
  }

  it('fans out to 50 clients over three gateways with nothing lost, duplicated or reordered', async () => {
    const { status, report, output } = await load('fanout', '--rooms', '5', '--members', '10', '--rate', '50', '--duration', '3');
    expect(status, output).toBe(0);
    const [step] = report.steps;
    expect(report.connected).toBe(50);
    expect(step!.acked).toBeGreaterThan(100);
    expect(step!.delivered).toBe(step!.acked * 10); // every acked message reached each of its room's 10 members
    expect([step!.lost, step!.duplicates, step!.reordered, step!.failed]).toEqual([0, 0, 0, 0]);
  });

  it('keeps every message through churn: clients reconnecting elsewhere and rejoining with since', async () => {
    const { status, report, output } = await load('churn', '--rooms', '3', '--members', '10', '--rate', '30', '--duration', '3', '--churn', '0.2');
    expect(status, output).toBe(0);
    const [step] = report.steps;
    expect(step!.reconnects).toBeGreaterThan(3);
    expect([step!.lost, step!.duplicates, step!.reordered]).toEqual([0, 0, 0]);
  });

  it('fans out over the fallback transport (event streams down, POSTs up) with nothing lost, and through churn', async () => {
    const { status, report, output } = await load('fanout', '--rooms', '4', '--members', '10', '--rate', '40', '--duration', '3', '--transport', 'sse');
    expect(status, output).toBe(0);
    const [step] = report.steps;
    expect(report).toMatchObject({ transport: 'sse', connected: 40 });
    expect(step!.acked).toBeGreaterThan(80);
    expect(step!.delivered).toBe(step!.acked * 10);
    expect([step!.lost, step!.duplicates, step!.reordered, step!.failed, step!.errors]).toEqual([0, 0, 0, 0, 0]);
    expect(step!.ackLatencyMs.p99).toBeGreaterThan(0);
    expect(step!.transports).toBeUndefined();

    const churn = await load('churn', '--rooms', '3', '--members', '10', '--rate', '30', '--duration', '3', '--churn', '0.2', '--transport', 'sse');
    expect(churn.status, churn.output).toBe(0);
    expect(churn.report.steps[0]!.reconnects).toBeGreaterThan(3);
    expect([churn.report.steps[0]!.lost, churn.report.steps[0]!.duplicates, churn.report.steps[0]!.reordered]).toEqual([0, 0, 0]);
  });

  it('mixed: half the clients on each transport in the same rooms, figures per transport, server and Redis CPU per delivery', async () => {
    const pids = cluster.gateways.flatMap((g) => ['--server-pid', String(g.pid)]);
    const { status, report, output } = await load('fanout', '--rooms', '4', '--members', '10', '--rate', '40', '--duration', '3', '--transport', 'mixed',
      ...pids, '--redis-url', inject('redisUrl'));
    expect(status, output).toBe(0);
    expect(report.connectedByTransport).toEqual({ ws: 20, sse: 20 });
    const [step] = report.steps;
    const { ws, sse } = step!.transports!;
    expect(step!.delivered).toBe(step!.acked * 10);
    expect(ws!.delivered + sse!.delivered).toBe(step!.delivered);
    expect(ws!.delivered).toBe(sse!.delivered); // every room has 5 members on each
    expect(ws!.acked + sse!.acked).toBe(step!.acked);
    expect(Math.min(ws!.acked, sse!.acked)).toBeGreaterThan(20); // two senders on each
    for (const t of [ws!, sse!]) expect([t.latencyMs.p99 > 0, t.ackLatencyMs.p99 > 0]).toEqual([true, true]);
    expect([step!.lost, step!.duplicates, step!.reordered, step!.failed]).toEqual([0, 0, 0, 0]);
    expect(step!.serverCpuUsPerDelivery).toBeGreaterThan(0);
    expect(step!.redis?.cpuUsPerDelivery).toBeGreaterThan(0);
    expect(output).toMatch(/ws +delivered .* sse +delivered/s);
  });

  it('big-room: fills one room past the list limit in stages, probes joins, then delivers to every member', async () => {
    const pids = cluster.gateways.flatMap((g) => ['--server-pid', String(g.pid)]);
    const { status, report, output } = await load<RoomsReport>('big-room', '--members', '150', '--checkpoints', '50,150', '--probe-joins', '20', '--probe-rate', '50',
      '--idle', '1', '--rate', '20', '--duration', '2', ...pids, '--redis-url', inject('redisUrl'));
    expect(status, output).toBe(0);
    expect(report).toMatchObject({ scenario: 'big-room', rooms: 1, members: 150, connected: 150, memberships: 150 });
    expect(report.checkpoints.map((c) => [c.members, c.joins, c.failed])).toEqual([[50, 20, 0], [150, 20, 0]]);
    // Within the list limit (100) joins are presence to every member; crossing it, an occupancy to each.
    expect(report.fill.notices.presence).toBeGreaterThan(1000);
    expect(report.fill.notices.occupancy).toBeGreaterThan(0);
    expect(report.checkpoints[0]!.notices.presence).toBeGreaterThan(20 * 49); // each probe's join and leave, to the 49 others
    expect(report.checkpoints[1]!.notices.presence).toBe(0);
    expect(report.fill.cost.serverCpuUs).toBeGreaterThan(0);
    expect(report.fill.cost.redisScriptsPer).toBeGreaterThan(0);
    expect(report.memory.serverRssAfterBytes).toBeGreaterThan(0);
    const [step] = report.steps;
    expect(step!.acked).toBeGreaterThan(10);
    expect(step!.delivered).toBe(step!.acked * 150);
    expect([step!.lost, step!.duplicates, step!.reordered, step!.failed]).toEqual([0, 0, 0, 0]);
    expect(step!.redis?.scriptsPerMessage).toBeGreaterThan(0);
  });

  it('many-rooms: rooms of 2 over fewer clients (each in several rooms), idle, then one sender per room', async () => {
    const { status, report, output } = await load<RoomsReport>('many-rooms', '--rooms', '20', '--members', '2', '--clients', '10', '--idle', '1',
      '--rate', '20,40', '--duration', '2', '--redis-url', inject('redisUrl'));
    expect(status, output).toBe(0);
    expect(report).toMatchObject({ scenario: 'many-rooms', rooms: 20, clients: 10, connected: 10, memberships: 40 });
    expect(report.idle.cost.redisCpuPercent).toBeGreaterThanOrEqual(0);
    expect(report.steps.map((s) => s.rate)).toEqual([20, 40]);
    for (const step of report.steps) {
      expect(step.delivered).toBe(step.acked * 2);
      expect([step.lost, step.duplicates, step.reordered, step.failed]).toEqual([0, 0, 0, 0]);
    }
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
      const result = await run(process.execPath, [cli, 'storm', ...urls, '--kill', String(victim!.pid), '--clients', '300', '--rooms', '10',
        '--control-rooms', '2', '--control-members', '5', '--workers', '2', '--timeout', '30', '--json', out], { timeoutMs: 90_000 });
      expect(result.status, result.output).toBe(0);
      const report = JSON.parse(readFileSync(out, 'utf8')) as StormReport;
      expect(report).toMatchObject({ victims: 300, affected: 300, stillAway: 0, lost: 0, duplicated: 0, reordered: 0, gaps: 0 });
      expect(report.allBackMs).toBeGreaterThan(0);
      expect(Object.keys(report.nodes).sort()).toEqual(others.map((g) => g.nodeId).sort());
    } finally {
      await cluster.stop();
    }
  }, 120_000);

  it('one big room: half on the SIGKILLed gateway; the other half (bystanders) get no presence frames, and the survivors\' CPU is reported', async () => {
    const cluster = await startCluster(3, inject('redisUrl'), { RATE_LIMIT_PER_SEC: '10000', RATE_LIMIT_BURST: '10000' });
    try {
      await waitFor(async () => (await Promise.all(cluster.gateways.map(readyz))).every((s) => s === 200), { what: 'ready' });
      const [victim, ...others] = cluster.gateways;
      const out = join(mkdtempSync(join(tmpdir(), 'storm-')), 'report.json');
      const result = await run(process.execPath, [cli, 'storm', ...[victim!, ...others].flatMap((g) => ['--url', g.wsUrl]), '--kill', String(victim!.pid),
        ...others.flatMap((g) => ['--survivor-pid', String(g.pid)]), '--rooms', '1', '--clients', '150', '--members', '300', '--rate', '5', '--settle', '1',
        '--control-rooms', '1', '--control-members', '4', '--workers', '2', '--timeout', '30', '--json', out], { timeoutMs: 90_000 });
      expect(result.status, result.output).toBe(0);
      const report = JSON.parse(readFileSync(out, 'utf8')) as StormReport;
      expect(report).toMatchObject({ victims: 150, affected: 150, bystanders: 150, stillAway: 0, lost: 0, duplicated: 0, reordered: 0 });
      expect(report.notices!.bystanders).toMatchObject({ clients: 150, presence: 0 }); // a room above the list limit: occupancy only
      expect(report.survivorCpuPercent!.during).toBeGreaterThan(0);
      expect(Object.keys(report.nodes).sort()).toEqual(others.map((g) => g.nodeId).sort());
    } finally {
      await cluster.stop();
    }
  }, 120_000);
});
