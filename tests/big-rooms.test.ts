import type { ErrorFrame, JoinedFrame, MembersFrame, OccupancyFrame } from '@chat/protocol';
import { TestClient, sleep, startRedisCluster, uniquePrefix, waitFor, type RedisClusterHandle } from '@chat/testkit';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { readyz, startGateway, type GatewayProcess } from './helpers/gateways.js';

/*
 * The contract's "Rooms of any size" against three real gateways, on one Redis
 * and on a Redis Cluster: joined.count and members, the members pages, occupancy
 * instead of presence above the list limit (at most once a second, only when the
 * count changed, at once at a crossing), coalesced typing, and a gateway killed
 * under half of a big room. The smallest list limit the contract allows keeps
 * the rooms small.
 */
const L = 20;
const PRESENCE_TTL_MS = 1000;
const name = (i: number) => `u${String(i).padStart(4, '0')}`;
const occupancies = (c: TestClient) => c.ofType('occupancy').map((o: OccupancyFrame) => o.count);
const presences = (c: TestClient) => c.ofType('presence').length;

interface Topology {
  label: string;
  env(): Record<string, string>;
  stop?(): Promise<void>;
}

let cluster: RedisClusterHandle | undefined;
const topologies: Topology[] = [
  { label: 'one Redis', env: () => ({ REDIS_URL: inject('redisUrl') }) },
  {
    label: 'a Redis Cluster of 3 primaries',
    env: () => ({ REDIS_URL: '', REDIS_CLUSTER_NODES: cluster!.seeds }),
  },
];

describe.each(topologies)('rooms of any size on three gateways, $label', (topology) => {
  let gateways: GatewayProcess[];
  let env: Record<string, string>;
  const clients: TestClient[] = [];

  beforeAll(async () => {
    if (topology.label.includes('Cluster')) cluster = await startRedisCluster({ primaries: 3, replicasPerPrimary: 0 });
    env = {
      ...topology.env(), REDIS_PREFIX: uniquePrefix('big'), MEMBER_LIST_LIMIT: String(L), PRESENCE_TTL_MS: String(PRESENCE_TTL_MS),
      RATE_LIMIT_PER_SEC: '1000', RATE_LIMIT_BURST: '1000', MAX_CONNECTIONS_PER_USER: '0',
    };
    gateways = await Promise.all([1, 2, 3].map((n) => startGateway({ ...env, NODE_ID: `big-${n}` })));
    await waitFor(async () => (await Promise.all(gateways.map(readyz))).every((s) => s === 200), { what: 'gateways ready', timeoutMs: 15_000 });
  }, 60_000);
  afterAll(async () => {
    await Promise.all(clients.splice(0).map((c) => c.terminate()));
    await Promise.all((gateways ?? []).map((g) => g.stop()));
    if (topology.label.includes('Cluster')) await cluster?.stop();
  });

  async function connect(gateway: number, user: string): Promise<TestClient> {
    const client = await TestClient.connect(gateways[gateway]!.wsUrl, user);
    clients.push(client);
    return client;
  }

  /** Users `from`.. `from + count - 1` joined to `room`, spread over the gateways (or all on `only`). */
  async function fill(room: string, from: number, count: number, only?: number): Promise<TestClient[]> {
    const joined = await Promise.all(Array.from({ length: count }, async (_, i) => {
      const c = await connect(only ?? (from + i) % 3, name(from + i));
      await c.request({ type: 'join', room });
      return c;
    }));
    return joined;
  }

  async function allMembers(pager: TestClient, room: string, limit: number): Promise<{ users: string[]; counts: number[] }> {
    const users: string[] = [];
    const counts: number[] = [];
    let after: string | undefined;
    for (;;) {
      const page = (await pager.request({ type: 'members', room, limit, ...(after && { after }) })) as MembersFrame;
      users.push(...page.users);
      counts.push(page.count);
      if (page.next === undefined) return { users, counts };
      after = page.next;
    }
  }

  it('answers joins with the count and at most L members, and pages every member in id order from any gateway', async () => {
    const room = 'hall';
    await fill(room, 0, L - 1);
    const last = await connect(2, 'zz-last');
    const small = (await last.request({ type: 'join', room })) as JoinedFrame;
    expect(small).toMatchObject({ count: L, limit: L });
    expect(small.members).toEqual([...Array.from({ length: L - 1 }, (_, i) => name(i)), 'zz-last']);
    await fill(room, L, 40);
    const late = await connect(1, 'a-late');
    const big = (await late.request({ type: 'join', room })) as JoinedFrame;
    expect(big.count).toBe(L + 41);
    expect(big.members).toHaveLength(L);
    expect(big.members[0]).toBe('a-late');
    for (const g of [0, 1, 2]) {
      const pager = await connect(g, `pager-${g}`);
      await pager.request({ type: 'join', room });
      const { users, counts } = await allMembers(pager, room, 7);
      const everyone = ['a-late', 'zz-last', ...Array.from({ length: L + 40 }, (_, i) => name(i)).filter((u) => u !== name(L - 1))];
      expect(users).toEqual([...everyone, ...['pager-0', 'pager-1', 'pager-2'].slice(0, g + 1)].sort());
      expect(new Set(counts)).toEqual(new Set([users.length]));
    }
    const code = async (frame: Record<string, unknown>) => ((await late.request(frame)) as ErrorFrame).code;
    expect(await code({ type: 'members', room, after: '../etc' })).toBe('bad_request');
    expect(await code({ type: 'members', room, limit: 0 })).toBe('bad_request');
    expect(await code({ type: 'members', room: 'not-mine' })).toBe('not_joined');
    expect(((await late.request({ type: 'members', room, limit: 1_000_000 })) as MembersFrame).users).toHaveLength(L + 44);
  });

  it('tells members above L the count with occupancy: at once at each crossing, then at most once a second, only when it changed, exact in the end', async () => {
    const room = 'arena';
    const watchers: TestClient[] = [];
    for (const g of [0, 1, 2]) {
      watchers.push(await connect(g, `watcher-${g}`));
      await watchers[g]!.request({ type: 'join', room });
    }
    const members = await fill(room, 100, L - 3); // L in all
    for (const [g, w] of watchers.entries()) await w.until(() => presences(w) === L - 3 + 2 - g, { what: 'a presence per later arrival' });
    // "At once": a crossing's occupancy comes before a message sent after the change was written.
    const crosser = await connect(1, 'crosser');
    await crosser.request({ type: 'join', room });
    await crosser.request({ type: 'send', room, text: 'crossed up' });
    for (const w of watchers) await w.until(() => w.messages(room).length === 1, { what: 'the message after the crossing' });
    for (const w of watchers) expect(occupancies(w)).toEqual([L + 1]);

    const presenceBefore = watchers.map(presences);
    const started = Date.now();
    for (let i = 0; i < 30; i++) {
      const c = await connect(i % 3, name(200 + i));
      await c.request({ type: 'join', room });
      if (i % 4 === 0) await members[i / 4]!.request({ type: 'leave', room });
      await sleep(40);
    }
    const expected = L + 1 + 30 - 8;
    for (const w of watchers) await w.until(() => occupancies(w).at(-1) === expected, { what: `occupancy ${expected}`, timeoutMs: 3000 });
    const elapsed = Date.now() - started;
    for (const [i, w] of watchers.entries()) {
      const during = occupancies(w).slice(1);
      expect(during.length).toBeLessThanOrEqual(Math.ceil(elapsed / 1000) + 1);
      for (let k = 1; k < during.length; k++) expect(during[k]).not.toBe(during[k - 1]);
      expect(presences(w)).toBe(presenceBefore[i]);
    }
    expect(((await crosser.request({ type: 'members', room, limit: 1 })) as MembersFrame).count).toBe(expected);

    // Down to L: at once again (before a message sent once the count says L), and per-user presence resumes.
    const leavers = clients.filter((c) => c.label.startsWith('u02')).slice(0, expected - L);
    for (const c of leavers) await c.request({ type: 'leave', room });
    await waitFor(async () => ((await crosser.request({ type: 'members', room, limit: 1 })) as MembersFrame).count === L, { what: `count ${L}` });
    await crosser.request({ type: 'send', room, text: 'crossed down' });
    for (const w of watchers) {
      await w.until(() => w.messages(room).length === 2, { what: 'the message after the crossing back' });
      expect(occupancies(w).at(-1)).toBe(L);
    }
    await crosser.request({ type: 'leave', room });
    for (const w of watchers) await w.until(() => w.ofType('presence').at(-1)?.user === 'crosser', { what: 'presence below L' });
  });

  it('coalesces typing above L to at most one a second per room for every member', async () => {
    const room = 'chatter';
    const watcher = await connect(0, 'listener');
    await watcher.request({ type: 'join', room });
    const typists = await fill(room, 300, 30);
    const started = Date.now();
    for (let round = 0; round < 8; round++) {
      for (const t of typists) t.send({ type: 'typing', room });
      await sleep(250);
    }
    await sleep(200);
    const typing = watcher.ofType('typing');
    expect(typing.length).toBeGreaterThanOrEqual(1);
    expect(typing.length).toBeLessThanOrEqual(Math.ceil((Date.now() - started) / 1000) + 1);
  });

  it('shows a gateway killed under half of a big room as occupancy, not a presence per user, with the count exact afterwards', async () => {
    const victim = await startGateway({ ...env, NODE_ID: 'big-victim' });
    const room = 'stage';
    const watchers = await Promise.all([0, 1, 2].map(async (g) => {
      const w = await connect(g, `eye-${g}`);
      await w.request({ type: 'join', room });
      return w;
    }));
    const doomed = await Promise.all(Array.from({ length: 40 }, async (_, i) => {
      const c = await TestClient.connect(victim.wsUrl, name(400 + i));
      await c.request({ type: 'join', room });
      return c;
    }));
    await fill(room, 500, 37);
    const total = 3 + 40 + 37;
    for (const w of watchers) await w.until(() => occupancies(w).at(-1) === total, { what: `occupancy ${total}`, timeoutMs: 3000 });
    const presenceBefore = watchers.map(presences);
    await victim.kill();
    for (const w of watchers) await w.until(() => occupancies(w).at(-1) === total - 40, { what: 'occupancy after the withdrawal', timeoutMs: PRESENCE_TTL_MS * 1.25 + 3000 });
    watchers.forEach((w, i) => expect(presences(w)).toBe(presenceBefore[i]));
    const { users } = await allMembers(watchers[1]!, room, 1000);
    expect(users).toHaveLength(total - 40);
    expect(users.some((u) => u >= name(400) && u < name(440))).toBe(false);
    await Promise.all(doomed.map((d) => d.closed));
  });

  it('keeps the count exact, with no ghost, through 1,000 users joining and leaving in a loop and a gateway killed among them', async () => {
    const room = 'turnstile';
    const victim = await startGateway({ ...env, NODE_ID: 'churn-victim' });
    const watcher = await connect(0, 'turnstile-watch');
    await watcher.request({ type: 'join', room });
    const nodes = [gateways[0]!, gateways[1]!, gateways[2]!, victim];
    const users = await Promise.all(Array.from({ length: 1000 }, (_, i) => TestClient.connect(nodes[i % 4]!.wsUrl, name(1000 + i))));
    clients.push(...users.filter((_, i) => i % 4 !== 3));
    const inRoom = new Set<number>();
    let killed = false;
    const churn = async (worker: number) => {
      for (let round = 0; round < 5; round++) { // an odd number: most end in the room
        for (let i = worker; i < users.length; i += 8) {
          if (killed && i % 4 === 3) continue;
          const reply = await users[i]!.request({ type: inRoom.has(i) ? 'leave' : 'join', room }).catch(() => undefined);
          if (reply?.type === 'joined') inRoom.add(i);
          else if (reply?.type === 'left') inRoom.delete(i);
        }
      }
    };
    const churning = Promise.all(Array.from({ length: 8 }, (_, w) => churn(w)));
    await sleep(1500);
    await victim.kill();
    killed = true;
    await churning;
    for (let i = 3; i < users.length; i += 4) inRoom.delete(i); // the victim's users are gone with it
    const expected = inRoom.size + 1;
    // Within the presence bound the victim's users are withdrawn: every gateway agrees on who is left.
    await waitFor(async () => ((await watcher.request({ type: 'members', room, limit: 1 })) as MembersFrame).count === expected,
      { what: `count ${expected}`, timeoutMs: PRESENCE_TTL_MS * 1.25 + 5000 });
    const listed = await allMembers(watcher, room, 1000);
    expect(listed.users).toEqual(['turnstile-watch', ...[...inRoom].map((i) => name(1000 + i))].sort());
    for (const g of [1, 2]) {
      const other = await connect(g, `turnstile-check-${g}`);
      const joined = (await other.request({ type: 'join', room })) as JoinedFrame;
      expect(joined.count).toBe(expected + g);
    }
    await watcher.until(() => occupancies(watcher).at(-1) === expected + 2, { what: `the final occupancy ${expected + 2} (last: ${occupancies(watcher).slice(-4)})`, timeoutMs: 3000 });
    await Promise.all(users.filter((_, i) => i % 4 === 3).map((u) => u.closed));
  }, 60_000);
});
