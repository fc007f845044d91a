import type { JoinedFrame, PresenceFrame } from '@chat/protocol';
import { TestClient, sleep, waitFor } from '@chat/testkit';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { readyz, startCluster, startGateway, type Cluster } from './helpers/gateways.js';

const PRESENCE_TTL_MS = 1000;

/** A client's view of a room: `joined.members`, then every presence event applied in order. */
function view(client: TestClient, room: string): string[] {
  const members = new Set<string>();
  for (const f of client.frames) {
    if (f.type === 'joined' && f.room === room) {
      members.clear();
      for (const m of (f as JoinedFrame).members) members.add(m);
    } else if (f.type === 'presence' && f.room === room) {
      if ((f as PresenceFrame).state === 'online') members.add(f.user);
      else members.delete(f.user);
    }
  }
  return [...members].sort();
}

describe('presence across three gateways', () => {
  let cluster: Cluster;
  const clients: TestClient[] = [];
  const connect = async (gateway: number, user: string) => {
    const c = await TestClient.connect(cluster.gateways[gateway]!.wsUrl, user);
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    cluster = await startCluster(3, inject('redisUrl'), { PRESENCE_TTL_MS: String(PRESENCE_TTL_MS) });
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.terminate()));
  });
  afterAll(async () => {
    await cluster.stop();
  });

  it('shows the same members and online/offline events from every gateway', async () => {
    const [u1, u2, u3] = [await connect(0, 'u1'), await connect(1, 'u2'), await connect(2, 'u3')];
    for (const c of [u1, u2, u3]) await c.request({ type: 'join', room: 'p1' });
    for (const c of [u1, u2, u3]) await c.until(() => view(c, 'p1').length === 3, { what: 'three members' });
    expect(view(u1, 'p1')).toEqual(['u1', 'u2', 'u3']);
    expect(u1.ofType('presence').map((p) => `${p.user}:${p.state}`)).toEqual(['u2:online', 'u3:online']);
    expect(u3.ofType('presence')).toEqual([]);

    await u2.request({ type: 'leave', room: 'p1' });
    for (const c of [u1, u3]) await c.until(() => view(c, 'p1').length === 2, { what: 'u2 offline' });
    expect(view(u1, 'p1')).toEqual(['u1', 'u3']);
    expect(view(u3, 'p1')).toEqual(['u1', 'u3']);
  });

  it('keeps a user with connections on two gateways online until both close', async () => {
    const watcher = await connect(0, 'watcher');
    await watcher.request({ type: 'join', room: 'p2' });
    const tabA = await connect(1, 'two-tabs');
    const tabB = await connect(2, 'two-tabs');
    await tabA.request({ type: 'join', room: 'p2' });
    await tabB.request({ type: 'join', room: 'p2' });
    await watcher.until(() => view(watcher, 'p2').includes('two-tabs'), { what: 'online' });
    await tabA.close();
    await sleep(300);
    expect(view(watcher, 'p2')).toEqual(['two-tabs', 'watcher']);
    await tabB.close();
    await watcher.until(() => !view(watcher, 'p2').includes('two-tabs'), { what: 'offline' });
    expect(watcher.ofType('presence').filter((p) => p.user === 'two-tabs').map((p) => p.state)).toEqual(['online', 'offline']);
  });

  it('stays right under churn: many users joining and leaving at once on different gateways', async () => {
    const users = await Promise.all(Array.from({ length: 30 }, (_, i) => connect(i % 3, `churn${i}`)));
    await Promise.all(users.map((c) => c.request({ type: 'join', room: 'p3' })));
    const leaving = users.filter((_, i) => i % 2 === 1);
    const staying = users.filter((_, i) => i % 2 === 0);
    await Promise.all(leaving.map((c, i) => (i % 3 === 0 ? c.terminate() : i % 3 === 1 ? c.close() : c.request({ type: 'leave', room: 'p3' }))));
    const expected = staying.map((c) => c.welcome.user).sort();
    for (const c of staying) await c.until(() => view(c, 'p3').join() === expected.join(), { timeoutMs: 10_000, what: 'the final members' });
    const observer = await connect(1, 'observer');
    const joined = await observer.request({ type: 'join', room: 'p3' });
    expect(joined.type === 'joined' && joined.members.sort()).toEqual([...expected, 'observer'].sort());
  });

  it(`shows the users of a gateway killed with SIGKILL offline within ${PRESENCE_TTL_MS * 1.25} ms`, async () => {
    // A fourth gateway on the cluster's prefix, so the cluster keeps its three for the other tests.
    const victim = await startGateway({
      REDIS_URL: inject('redisUrl'), REDIS_PREFIX: cluster.prefix, NODE_ID: 'victim', PRESENCE_TTL_MS: String(PRESENCE_TTL_MS),
    });
    await waitFor(async () => (await readyz(victim)) === 200, { what: 'victim ready' });
    const watcher = await connect(0, 'watcher');
    await watcher.request({ type: 'join', room: 'p4' });
    const doomed = await Promise.all(['d1', 'd2'].map((u) => TestClient.connect(victim.wsUrl, u)));
    for (const d of doomed) await d.request({ type: 'join', room: 'p4' });
    await watcher.until(() => view(watcher, 'p4').length === 3, { what: 'three members' });

    await victim.kill();
    const killedAt = Date.now();
    await watcher.until(() => view(watcher, 'p4').join() === 'watcher', { timeoutMs: 10_000, what: 'd1 and d2 offline' });
    const took = Date.now() - killedAt;
    expect(took).toBeLessThan(PRESENCE_TTL_MS * 1.25 + 500);
    expect(took).toBeGreaterThan(PRESENCE_TTL_MS / 2);
  });
});
