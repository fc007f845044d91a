import { MemoryHub } from '@chat/broker';
import type { ErrorFrame, JoinedFrame, MembersFrame, OccupancyFrame } from '@chat/protocol';
import { TestClient, sleep } from '@chat/testkit';
import { describe, expect, it } from 'vitest';
import { trackTestGateways, type TestGateway } from './harness.js';

/** The smallest list limit the contract allows keeps these rooms small. */
const L = 20;
const env = (node: string) => ({ NODE_ID: node, MEMBER_LIST_LIMIT: String(L), RATE_LIMIT_PER_SEC: '1000', RATE_LIMIT_BURST: '1000' });
const name = (i: number) => `u${String(i).padStart(3, '0')}`;

const { gateway, connect } = trackTestGateways();

async function twoNodes(): Promise<[TestGateway, TestGateway]> {
  const hub = new MemoryHub();
  return [await gateway(env('n1'), hub), await gateway(env('n2'), hub)];
}

/** `count` users u000... joined to `room`, alternating between the nodes. */
async function fill(nodes: TestGateway[], room: string, from: number, count: number): Promise<TestClient[]> {
  const clients = await Promise.all(Array.from({ length: count }, (_, i) => connect(nodes[(from + i) % nodes.length]!, name(from + i))));
  for (const c of clients) await c.request({ type: 'join', room });
  return clients;
}

const occupancies = (c: TestClient) => c.ofType('occupancy').map((o: OccupancyFrame) => o.count);
const presences = (c: TestClient) => c.ofType('presence').length;

describe('a room within the list limit', () => {
  it('behaves as in v1: joined lists everyone with the count, presence tells of each arrival, no occupancy', async () => {
    const nodes = await twoNodes();
    const watcher = await connect(nodes[0], 'watcher');
    await watcher.request({ type: 'join', room: 'small' });
    await fill(nodes, 'small', 0, L - 2);
    const last = await connect(nodes[1], 'zz-last');
    const joined = (await last.request({ type: 'join', room: 'small' })) as JoinedFrame;
    expect(joined.count).toBe(L);
    expect(joined.limit).toBe(L);
    expect(joined.members).toEqual([...Array.from({ length: L - 2 }, (_, i) => name(i)), 'watcher', 'zz-last']);
    await watcher.until(() => presences(watcher) === L - 1, { what: 'a presence per arrival' });
    await sleep(1200);
    expect(occupancies(watcher)).toEqual([]);
  });
});

describe('a room above the list limit', () => {
  it('lists at most L users in joined, the joiner among them, with the exact count', async () => {
    const nodes = await twoNodes();
    await fill(nodes, 'big', 0, 30);
    const late = await connect(nodes[0], 'zzz');
    const joined = (await late.request({ type: 'join', room: 'big' })) as JoinedFrame;
    expect(joined.count).toBe(31);
    expect(joined.members).toHaveLength(L);
    expect(joined.members).toContain('zzz');
    expect(joined.members).toEqual([...joined.members].sort());
  });

  it('pages every user in id order on any node, with the count and next', async () => {
    const nodes = await twoNodes();
    const clients = await fill(nodes, 'paged', 0, 45);
    const pager = clients[1]!; // on the second node
    const seen: string[] = [];
    let after: string | undefined;
    for (;;) {
      const page = (await pager.request({ type: 'members', room: 'paged', limit: 10, ...(after && { after }) })) as MembersFrame;
      expect(page).toMatchObject({ type: 'members', room: 'paged', count: 45 });
      seen.push(...page.users);
      if (page.next === undefined) break;
      expect(page.next).toBe(page.users.at(-1));
      after = page.next;
    }
    expect(seen).toEqual(Array.from({ length: 45 }, (_, i) => name(i)));
    const first = (await pager.request({ type: 'members', room: 'paged' })) as MembersFrame;
    expect(first.users).toHaveLength(45); // default limit 100
    expect(first.next).toBeUndefined();
  });

  it('refuses members with a malformed after, a limit of 0, or in a room not joined; caps a limit of a million', async () => {
    const nodes = await twoNodes();
    const [member] = await fill(nodes, 'edge', 0, 3);
    const code = async (frame: Record<string, unknown>) => ((await member!.request(frame)) as ErrorFrame).code;
    expect(await code({ type: 'members', room: 'edge', after: 'not a name' })).toBe('bad_request');
    expect(await code({ type: 'members', room: 'edge', limit: 0 })).toBe('bad_request');
    expect(await code({ type: 'members', room: 'edge', limit: -1 })).toBe('bad_request');
    expect(await code({ type: 'members', room: 'elsewhere' })).toBe('not_joined');
    const all = (await member!.request({ type: 'members', room: 'edge', limit: 1_000_000 })) as MembersFrame;
    expect(all.users).toEqual(['u000', 'u001', 'u002']);
  });

  it('sends occupancy instead of presence, at most once a second, only when the count changed, and exact in the end', async () => {
    const nodes = await twoNodes();
    const watcher = await connect(nodes[0], 'watcher');
    await watcher.request({ type: 'join', room: 'crowd' });
    const crowd = await fill(nodes, 'crowd', 0, 30); // crosses L on the way
    await watcher.until(() => occupancies(watcher).at(-1) === 31, { what: 'occupancy 31', timeoutMs: 3000 });
    const presenceBefore = presences(watcher);
    const occupancyBefore = occupancies(watcher).length;

    const started = Date.now();
    const churn: TestClient[] = [];
    for (let i = 0; i < 25; i++) {
      churn.push(await connect(nodes[i % 2]!, name(100 + i)));
      await churn.at(-1)!.request({ type: 'join', room: 'crowd' });
      if (i % 3 === 0) await crowd[i]!.request({ type: 'leave', room: 'crowd' });
      await sleep(60);
    }
    const expected = 31 + 25 - 9;
    await watcher.until(() => occupancies(watcher).at(-1) === expected, { what: `occupancy ${expected}`, timeoutMs: 3000 });
    const elapsed = Date.now() - started;
    const during = occupancies(watcher).slice(occupancyBefore);
    expect(during.length).toBeLessThanOrEqual(Math.ceil(elapsed / 1000) + 1);
    for (let i = 1; i < during.length; i++) expect(during[i]).not.toBe(during[i - 1]);
    expect(presences(watcher)).toBe(presenceBefore); // no per-user presence above L
    expect(((await watcher.request({ type: 'members', room: 'crowd', limit: 1 })) as MembersFrame).count).toBe(expected);
    await sleep(1300);
    expect(occupancies(watcher).at(-1)).toBe(expected); // nothing more: the count did not change
    expect(occupancies(watcher).slice(occupancyBefore)).toEqual(during);
  });

  it('does not tell a joiner the count its joined already said', async () => {
    const nodes = await twoNodes();
    const watcher = await connect(nodes[1], 'watcher');
    await watcher.request({ type: 'join', room: 'known' });
    await fill(nodes, 'known', 0, 25);
    await watcher.until(() => occupancies(watcher).at(-1) === 26, { what: 'occupancy 26' });
    for (const node of nodes) {
      const joiner = await connect(node, `joiner-${node.config.nodeId}`);
      const joined = (await joiner.request({ type: 'join', room: 'known' })) as JoinedFrame;
      await watcher.until(() => occupancies(watcher).at(-1) === joined.count, { what: `occupancy ${joined.count}` });
      await sleep(1200); // a second window passes with the count unchanged
      expect(occupancies(joiner)).toEqual([]);
    }
  });

  it('announces a crossing either way at once, then per-user presence resumes below L', async () => {
    const nodes = await twoNodes();
    const watcher = await connect(nodes[0], 'watcher');
    await watcher.request({ type: 'join', room: 'edge' });
    const members = await fill(nodes, 'edge', 0, L - 1); // L in all
    await watcher.until(() => presences(watcher) === L - 1, { what: 'presence of each' });
    expect(occupancies(watcher)).toEqual([]);

    // "At once": the occupancy comes before a message sent after the change, not a second-long window later.
    const crosser = await connect(nodes[1], 'crosser');
    await crosser.request({ type: 'join', room: 'edge' }); // L + 1
    await crosser.request({ type: 'send', room: 'edge', text: 'after the crossing' });
    await watcher.until(() => watcher.messages('edge').length === 1, { what: 'the message' });
    expect(occupancies(watcher)).toEqual([L + 1]);
    expect(presences(watcher)).toBe(L - 1); // no presence for the crosser

    await crosser.request({ type: 'leave', room: 'edge' }); // back to L within the second: still at once
    await members[1]!.request({ type: 'send', room: 'edge', text: 'after the crossing back' });
    await watcher.until(() => watcher.messages('edge').length === 2, { what: 'the second message' });
    expect(occupancies(watcher)).toEqual([L + 1, L]);
    expect(watcher.frames.findIndex((f) => f.type === 'occupancy' && f.count === L))
      .toBeLessThan(watcher.frames.findIndex((f) => f.type === 'message' && f.text === 'after the crossing back'));
    await members[0]!.request({ type: 'leave', room: 'edge' });
    await watcher.until(() => presences(watcher) === L, { what: 'presence again' });
    expect(watcher.ofType('presence').at(-1)).toMatchObject({ user: name(0), state: 'offline' });
  });

  it('tells no member of a change its joined already counted, while pub/sub lags behind the joins', async () => {
    const hub = new MemoryHub();
    const nodes = [await gateway(env('lag1'), hub, 40), await gateway(env('lag2'), hub, 40)];
    const clients = await Promise.all(Array.from({ length: 45 }, (_, i) => connect(nodes[i % 2]!, name(i))));
    await Promise.all(clients.map((c) => c.request({ type: 'join', room: 'lagged' })));
    for (const c of clients) {
      const joined = c.ofType('joined')[0]!;
      await c.until(() => (c.ofType('occupancy').at(-1)?.count ?? joined.count) === 45, { what: `${c.label} told 45`, timeoutMs: 3000 });
      if (joined.count > L) expect(presences(c), `${c.label} joined above L`).toBe(0);
      const told = [joined.count, ...occupancies(c)];
      for (let i = 1; i < told.length; i++) expect(told[i], `${c.label}: ${told}`).not.toBe(told[i - 1]);
    }
  });

  it('tells every member of a room too big for one publish the count, a slice at a time', async () => {
    const nodes = await twoNodes();
    const crowd = await fill([nodes[0]], 'stadium', 0, 560); // above the 500 members one publish reaches here
    const late = await connect(nodes[1], 'late');
    await late.request({ type: 'join', room: 'stadium' });
    for (const c of crowd) await c.until(() => (c.ofType('occupancy').at(-1)?.count ?? c.ofType('joined')[0]!.count) === 561, { what: `${c.label} told 561` });
  }, 30_000);

  it('gives a member that rejoins a crowded room every message once, in order, while counts change and pub/sub lags', async () => {
    const hub = new MemoryHub();
    const nodes = [await gateway(env('r1'), hub, 30), await gateway(env('r2'), hub, 30)];
    await fill(nodes, 'busy', 0, 25);
    const writer = await connect(nodes[1]!, 'writer');
    await writer.request({ type: 'join', room: 'busy' });
    const rejoiner = await connect(nodes[0]!, 'rejoiner');
    await rejoiner.request({ type: 'join', room: 'busy' });
    let writing = true;
    const acked: string[] = [];
    const sending = (async () => {
      for (let i = 0; writing; i++) {
        const ack = await writer.request({ type: 'send', room: 'busy', text: `m${i}` });
        if (ack.type === 'ack') acked.push(ack.id);
        await sleep(5);
      }
    })();
    for (let round = 0; round < 8; round++) {
      const churn = await connect(nodes[round % 2]!, name(500 + round)); // a count change: an occupancy goes out
      await churn.request({ type: 'join', room: 'busy' });
      const since = rejoiner.messages('busy').at(-1)?.id;
      await rejoiner.request({ type: 'join', room: 'busy', ...(since && { since }) });
      await sleep(150);
    }
    writing = false;
    await sending;
    // A rejoin's history repeats what came live since `since` (a client drops ids it has); what
    // must never happen is a live message before the history that precedes it: first sightings in order.
    const firstSeen = () => [...new Set(rejoiner.messages('busy').map((m) => m.id))];
    await rejoiner.until(() => firstSeen().length >= acked.length, {
      what: `every message (missing ${acked.filter((id) => !firstSeen().includes(id)).slice(0, 5)}; frames ${JSON.stringify(rejoiner.frames.filter((f) => f.type === 'joined').map((f) => f.type === 'joined' && [f.recovered, f.newest, f.history.length]))})`,
      timeoutMs: 5000,
    });
    expect(firstSeen()).toEqual(acked);
  }, 20_000);

  it('relays at most one typing a second per room, naming one who typed', async () => {
    const nodes = await twoNodes();
    const watcher = await connect(nodes[0], 'watcher');
    await watcher.request({ type: 'join', room: 'chatty' });
    const typists = await fill(nodes, 'chatty', 0, 30);
    const started = Date.now();
    for (let round = 0; round < 10; round++) {
      for (const t of typists) t.send({ type: 'typing', room: 'chatty' });
      await sleep(200);
    }
    await sleep(100);
    const elapsed = Date.now() - started;
    const typing = watcher.ofType('typing');
    expect(typing.length).toBeGreaterThanOrEqual(1);
    expect(typing.length).toBeLessThanOrEqual(Math.ceil(elapsed / 1000) + 1);
    for (const t of typing) expect(t.user).toMatch(/^u0\d\d$/);
  });

  it('shows the withdrawal of a closing node\'s users as occupancy, not a presence each', async () => {
    const hub = new MemoryHub();
    const stays = await gateway(env('stays'), hub);
    const goes = await gateway(env('goes'), hub);
    const watcher = await connect(stays, 'watcher');
    await watcher.request({ type: 'join', room: 'half' });
    await fill([stays], 'half', 0, 25);
    await fill([goes], 'half', 100, 25);
    await watcher.until(() => occupancies(watcher).at(-1) === 51, { what: 'occupancy 51' });
    const presenceBefore = presences(watcher);
    await goes.close();
    await watcher.until(() => occupancies(watcher).at(-1) === 26, { what: 'occupancy 26', timeoutMs: 3000 });
    expect(presences(watcher)).toBe(presenceBefore);
    expect(occupancies(watcher).filter((c) => c < 51).length).toBeLessThanOrEqual(2);
  });
});

describe('the server API', () => {
  it('pages a room\'s members with their connections, and lists rooms with their counts', async () => {
    const hub = new MemoryHub();
    const key = 'k'.repeat(32);
    const nodes = [await gateway({ ...env('n1'), API_KEY: key }, hub), await gateway(env('n2'), hub)];
    await fill(nodes, 'api', 0, 5);
    await (await connect(nodes[1]!, name(0))).request({ type: 'join', room: 'api' }); // a second tab
    const get = async (path: string) => (await fetch(`${nodes[0]!.httpUrl}${path}`, { headers: { authorization: `Bearer ${key}` } })).json();
    expect(await get('/api/rooms/api/members?limit=2')).toEqual({
      room: 'api', members: [{ user: 'u000', connections: 2 }, { user: 'u001', connections: 1 }], count: 5, next: 'u001',
    });
    expect(await get('/api/rooms/api/members?after=u003')).toEqual({ room: 'api', members: [{ user: 'u004', connections: 1 }], count: 5, next: null });
    expect(await get('/api/rooms')).toEqual({ rooms: [{ room: 'api', members: 5, connections: 6 }], next: null });
  });
});
