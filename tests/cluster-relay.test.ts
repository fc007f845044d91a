import { compareIds, type AckFrame } from '@chat/protocol';
import { TestClient, waitFor } from '@chat/testkit';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { readyz, startCluster, type Cluster } from './helpers/gateways.js';

describe('three gateways relaying rooms through Redis', () => {
  let cluster: Cluster;
  const clients: TestClient[] = [];
  const connect = async (gateway: number, user: string) => {
    const client = await TestClient.connect(cluster.gateways[gateway]!.wsUrl, user);
    clients.push(client);
    return client;
  };

  beforeAll(async () => {
    cluster = await startCluster(3, inject('redisUrl'));
    await waitFor(async () => (await Promise.all(cluster.gateways.map(readyz))).every((s) => s === 200), { what: 'all ready' });
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
  });
  afterAll(async () => {
    await cluster.stop();
  });

  it('says in welcome which gateway a client landed on', async () => {
    const ids = await Promise.all([0, 1, 2].map(async (i) => (await connect(i, `u${i}`)).welcome.node));
    expect(ids).toEqual(['gw-1', 'gw-2', 'gw-3']);
  });

  it('delivers every message once, in one order, to members on every gateway, the sender included', async () => {
    const members = await Promise.all([0, 1, 2, 0, 1, 2].map((g, i) => connect(g, `member${i}`)));
    await Promise.all(members.map((c) => c.request({ type: 'join', room: 'lobby' })));
    const perClient = 25;
    const acks = await Promise.all(members.flatMap((c, i) =>
      Array.from({ length: perClient }, (_, n) => c.request({ type: 'send', room: 'lobby', text: `from ${i} #${n}` }))));
    expect(acks.every((a) => a.type === 'ack')).toBe(true);
    const acked = (acks as AckFrame[]).map((a) => a.id).sort(compareIds);
    const total = members.length * perClient;
    expect(new Set(acked).size).toBe(total);

    for (const c of members) {
      await c.until(() => c.messages('lobby').length >= total, { timeoutMs: 10_000, what: `${total} messages` });
    }
    const sequences = members.map((c) => c.messages('lobby').map((m) => m.id));
    for (const sequence of sequences) expect(sequence).toEqual(acked);
    // Each message carries the sender's text and user.
    const byId = new Map(members[0]!.messages('lobby').map((m) => [m.id, m]));
    const ack0 = acks[0] as AckFrame;
    expect(byId.get(ack0.id)).toMatchObject({ user: 'member0', text: 'from 0 #0', ts: ack0.ts });
  });

  it('stops delivering to a member that left, and keeps rooms apart', async () => {
    const [a, b, c] = await Promise.all([connect(0, 'a'), connect(1, 'b'), connect(2, 'c')]);
    await a.request({ type: 'join', room: 'A' });
    await b.request({ type: 'join', room: 'B' });
    await c.request({ type: 'join', room: 'A' });
    await c.request({ type: 'join', room: 'B' });

    await a.request({ type: 'send', room: 'A', text: 'to A' });
    await b.request({ type: 'send', room: 'B', text: 'to B' });
    await c.until(() => c.messages().length === 2, { what: 'both messages on c' });
    await a.until(() => a.messages().length === 1, { what: 'A on a' });
    await b.until(() => b.messages().length === 1, { what: 'B on b' });
    expect(a.messages().map((m) => m.text)).toEqual(['to A']);
    expect(b.messages().map((m) => m.text)).toEqual(['to B']);

    await c.request({ type: 'leave', room: 'A' });
    await a.request({ type: 'send', room: 'A', text: 'after c left' });
    await b.request({ type: 'send', room: 'B', text: 'marker' });
    await c.waitFor((f) => f.type === 'message' && f.text === 'marker');
    await a.waitFor((f) => f.type === 'message' && f.text === 'after c left');
    expect(c.messages('A').map((m) => m.text)).toEqual(['to A']);
  });

  it('serves history across gateways, paging back with before', async () => {
    const writer = await connect(0, 'writer');
    await writer.request({ type: 'join', room: 'hist' });
    const sent: string[] = [];
    for (let i = 0; i < 12; i++) sent.push(((await writer.request({ type: 'send', room: 'hist', text: `h${i}` })) as AckFrame).id);
    const reader = await connect(2, 'reader');
    const joined = await reader.request({ type: 'join', room: 'hist' });
    expect(joined.type === 'joined' && joined.history.map((m) => m.id)).toEqual(sent);
    const page = await reader.request({ type: 'history', room: 'hist', before: sent[5], limit: 3 });
    expect(page.type === 'history' && page.messages.map((m) => m.id)).toEqual(sent.slice(2, 5));
  });
});
