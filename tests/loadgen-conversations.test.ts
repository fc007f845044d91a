import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ConversationsReport } from '@chat/loadgen';
import { waitFor } from '@chat/testkit';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { readyz, startCluster, type Cluster } from './helpers/gateways.js';
import { run } from './helpers/tools.js';

const cli = fileURLToPath(new URL('../packages/loadgen/dist/cli.js', import.meta.url));
const API_KEY = 'loadgen-conversations-key';

/** A short real run of the conversations scenario on three gateways: the counts are asserted, no timing is. */
describe('load generator: conversations', () => {
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = await startCluster(3, inject('redisUrl'), {
      RATE_LIMIT_PER_SEC: '10000', RATE_LIMIT_BURST: '10000', API_KEY, API_RATE_LIMIT_PER_SEC: '10000', API_RATE_LIMIT_BURST: '10000',
    });
    await waitFor(async () => (await Promise.all(cluster.gateways.map(readyz))).every((s) => s === 200), { what: 'ready' });
  });
  afterAll(async () => {
    await cluster.stop();
  });

  async function load(...args: string[]): Promise<{ status: number | null; report: ConversationsReport; output: string }> {
    const out = join(mkdtempSync(join(tmpdir(), 'conversations-')), 'report.json');
    const urls = cluster.gateways.map((g) => g.wsUrl).join(',');
    const result = await run(process.execPath, [cli, 'conversations', ...args, '--url', urls, '--json', out, '--quiet', '--workers', '2'], { timeoutMs: 90_000 });
    const output = result.output;
    let report: ConversationsReport;
    try {
      report = JSON.parse(readFileSync(out, 'utf8')) as ConversationsReport;
    } catch {
      throw new Error(`no report (exit ${result.status}):\n${output}`);
    }
    return { status: result.status, report, output };
  }

  it('users on two devices over three gateways, in direct conversations and groups, sending and reading: every count right on every device', async () => {
    const { status, report, output } = await load('--users', '40', '--devices', '2', '--dms', '3', '--groups', '3', '--group-size', '12',
      '--rate', '40', '--read-rate', '20', '--list-rate', '10', '--duration', '3', '--api-key', API_KEY);
    expect(status, output).toBe(0);
    expect(report).toMatchObject({ connections: 80, directs: 60, groups: 3, memberships: 156, openRooms: false });
    expect(report.setup).toMatchObject({ opensFailed: 0, joinsFailed: 0, missingFirstUnread: 0 });
    const t = report.traffic;
    expect(t.acked).toBeGreaterThan(60);
    expect(t.reads).toBeGreaterThan(10);
    expect([t.failed, t.readsFailed, t.listsFailed, t.unanswered]).toEqual([0, 0, 0, 0]);
    expect(t.unreads).toBeGreaterThan(t.acked); // every member's connections hear of each message
    expect(report.counts).toMatchObject({ pairs: 156, views: 312, unreadMismatches: 0, listMismatches: 0, disagreeing: 0, deliveryMismatches: 0 });
    expect(report.latencyMs.rooms.count).toBeGreaterThan(10);
    expect(output).toMatch(/unread mismatches 0, rooms-list mismatches 0, devices disagreeing 0/);
  });

  it('the open-room baseline: the same shape, every device joined, every message delivered once to each', async () => {
    const { status, report, output } = await load('--users', '20', '--devices', '2', '--dms', '2', '--groups', '2', '--group-size', '10',
      '--rate', '30', '--read-rate', '0', '--duration', '2', '--open-rooms');
    expect(status, output).toBe(0);
    expect(report).toMatchObject({ openRooms: true, connections: 40, directs: 20 });
    expect(report.traffic.acked).toBeGreaterThan(20);
    expect(report.traffic.unreads).toBe(0);
    expect(report.counts).toMatchObject({ views: 80 + 40, deliveryMismatches: 0 });
  });
});
