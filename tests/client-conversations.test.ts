import { ChatClient, type ChatClientOptions, type RoomsFrame, type TransportName, type UnreadFrame, type WebSocketLike } from '@chat/client';
import { freeStablePort, uniquePrefix, waitFor } from '@chat/testkit';
import WebSocket from 'ws';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { readyz, startCluster, startGateway, type Cluster, type GatewayProcess } from './helpers/gateways.js';

/*
 * @chat/client's conversations (issue 23) against real gateways on one Redis,
 * on each transport: open, listRooms, the unread frames and their total, and
 * read, with two clients of one user on different gateways agreeing on the
 * total after a read on either; and a client that was away while messages
 * came reads the list again, so its total is right without those frames.
 */
const webSocket = (url: string) => new WebSocket(url) as unknown as WebSocketLike;
const env = { RATE_LIMIT_PER_SEC: '1000', RATE_LIMIT_BURST: '1000' };

/** A client and what its application saw; closed after each test. */
const open: ChatClient[] = [];
function client(transport: TransportName, options: ChatClientOptions) {
  const c = new ChatClient({ storage: null, webSocket, backoffMinMs: 100, backoffMaxMs: 500, transports: [transport], ...options });
  open.push(c);
  const unread: UnreadFrame[] = [];
  const totals: number[] = [];
  const pages: Array<{ page: RoomsFrame; refresh: boolean }> = [];
  c.on('unread', (f) => unread.push(f));
  c.on('unreadTotal', (t) => totals.push(t));
  c.on('rooms', (page, { refresh }) => pages.push({ page, refresh }));
  return { client: c, unread, totals, pages };
}

describe.each(['websocket', 'sse'] as const)('@chat/client conversations over %s, against real gateways', (transport) => {
  let cluster: Cluster;
  const user = (name: string) => uniquePrefix(`${name}-${transport}`);

  beforeAll(async () => {
    cluster = await startCluster(2, inject('redisUrl'), env);
    await waitFor(async () => (await Promise.all(cluster.gateways.map(readyz))).every((s) => s === 200), { what: 'gateways ready' });
  });
  afterEach(() => {
    for (const c of open.splice(0)) c.close();
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it('opens, counts, lists and reads: two clients of one user on two gateways see the same total after a read on either', async () => {
    const [a, b] = cluster.gateways as [GatewayProcess, GatewayProcess];
    const [aliceId, bobId, carolId] = [user('alice'), user('bob'), user('carol')];
    const alice = client(transport, { url: a.wsUrl, user: aliceId });
    const carol = client(transport, { url: b.wsUrl, user: carolId });
    const bob1 = client(transport, { url: a.wsUrl, user: bobId });
    const bob2 = client(transport, { url: b.wsUrl, user: bobId });
    const bobs = [bob1, bob2];
    const welcomes = await Promise.all([alice, carol, bob1, bob2].map((c) => c.client.connect()));
    expect(welcomes.map((w) => w.node)).toEqual(['gw-1', 'gw-2', 'gw-1', 'gw-2']);
    expect([alice, bob1].map((c) => c.client.transport)).toEqual([transport, transport]);
    expect((await bob1.client.listRooms()).rooms).toEqual([]);

    const room = await alice.client.open(bobId);
    expect(room).toMatch(/^dm:/);
    expect(await bob2.client.open(aliceId)).toBe(room); // the same room whoever opens it
    await alice.client.join(room);
    const acks = [];
    for (const text of ['one', 'two', 'three']) acks.push(await alice.client.send(room, text));
    const ids = acks.map((ack) => ack.id);

    // Neither of bob's clients joined the room: both are told, and agree.
    await waitFor(() => bobs.every((b) => b.client.unreadTotal === 3), { what: 'bob\'s total 3 on both clients' });
    for (const b of bobs) {
      expect(b.client.unreadOf(room)).toMatchObject({ count: 3, last: { id: ids[2], text: 'three', user: aliceId } });
      expect(b.unread.at(-1)).toMatchObject({ room, count: 3, last: { id: ids[2] } });
    }
    expect(alice.client.unreadTotal).toBe(0); // her own messages: her position moved with them
    const page = await bob1.client.listRooms({ limit: 10 });
    expect(page).toMatchObject({ type: 'rooms', rooms: [{ room, unread: 3, read: expect.any(String), with: aliceId, last: { id: ids[2] } }] });
    expect(page.next).toBeUndefined();
    expect(bob1.client.unreadOf(room)?.with).toBe(aliceId);

    // A second conversation: the total is the sum.
    const carolRoom = await carol.client.open(bobId);
    await carol.client.join(carolRoom);
    const fromCarol = await carol.client.send(carolRoom, 'hi bob');
    await waitFor(() => bobs.every((b) => b.client.unreadTotal === 4), { what: 'bob\'s total 4 on both clients' });
    expect(bob2.client.conversations().map((r) => [r.room, r.count])).toEqual([[carolRoom, 1], [room, 3]]);

    // A read on one client moves the other's badge and total, on the other gateway.
    await expect(bob1.client.read(room, ids[1]!)).resolves.toEqual({ count: 1, read: ids[1] });
    expect(bob1.client.unreadTotal).toBe(2);
    await waitFor(() => bob2.client.unreadTotal === 2, { what: 'the read told to bob\'s other client' });
    expect(bob2.unread.at(-1)).toMatchObject({ room, count: 1, read: ids[1] });
    // And the other way round; an older id afterwards changes nothing.
    await expect(bob2.client.read(room, ids[2]!)).resolves.toEqual({ count: 0, read: ids[2] });
    await expect(bob2.client.read(carolRoom, fromCarol.id)).resolves.toEqual({ count: 0, read: fromCarol.id });
    await waitFor(() => bob1.client.unreadTotal === 0, { what: 'both reads told to bob\'s first client' });
    await expect(bob1.client.read(room, ids[0]!)).resolves.toEqual({ count: 0, read: ids[2] });
    for (const b of bobs) {
      expect(b.client.unreadTotal).toBe(0);
      expect(b.totals.at(-1)).toBe(0);
      expect(b.totals).toContain(4);
    }

    // A member-only room refuses an outsider's read.
    await expect(carol.client.read(room, ids[2]!)).rejects.toMatchObject({ code: 'forbidden' });
  });

  it('reads the list again after a reconnect: the count of messages sent while it was away is right without their frames', async () => {
    const [a] = cluster.gateways as [GatewayProcess];
    const port = await freeStablePort();
    const gatewayEnv = { ...env, REDIS_URL: inject('redisUrl'), REDIS_PREFIX: cluster.prefix, NODE_ID: 'victim' };
    let victim = await startGateway({ ...gatewayEnv, PORT: String(port) });
    try {
      await waitFor(async () => (await readyz(victim)) === 200, { what: 'victim ready' });
      const [aliceId, bobId] = [user('alice-away'), user('bob-away')];
      const alice = client(transport, { url: a.wsUrl, user: aliceId });
      const bob = client(transport, { url: victim.wsUrl, user: bobId });
      const states: string[] = [];
      bob.client.on('state', (state) => states.push(state));
      await Promise.all([alice.client.connect(), bob.client.connect()]);
      const room = await alice.client.open(bobId);
      await alice.client.join(room);
      await alice.client.send(room, 'before');
      await waitFor(() => bob.client.unreadTotal === 1, { what: 'the first count' });

      await victim.kill();
      await waitFor(() => bob.client.state === 'reconnecting', { what: 'bob reconnecting' });
      const away = [await alice.client.send(room, 'while away 1'), await alice.client.send(room, 'while away 2')];
      expect(bob.client.unreadTotal).toBe(1);
      victim = await startGateway({ ...gatewayEnv, PORT: String(port) });
      await waitFor(() => bob.client.unreadTotal === 3, { what: 'the count read again after the reconnect', timeoutMs: 15_000 });
      expect(states.at(-1)).toBe('connected');
      // From the page the client read by itself: no frame told of the messages sent while it was away.
      expect(bob.pages.filter((p) => p.refresh).at(-1)?.page.rooms).toMatchObject([{ room, unread: 3, with: aliceId, last: { id: away[1]!.id } }]);
      expect(bob.unread.some((f) => f.last?.id === away[1]!.id)).toBe(false);
      expect(bob.totals).toEqual([1, 3]);
      await expect(bob.client.read(room, away[1]!.id)).resolves.toEqual({ count: 0, read: away[1]!.id });
      expect(bob.totals).toEqual([1, 3, 0]);
    } finally {
      await victim.stop();
    }
  });
});
