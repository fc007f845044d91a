import { ChatClient, applyChange, type ChangeEventFrame, type MessageFrame, type TransportName, type WebSocketLike } from '@chat/client';
import { uniquePrefix, waitFor } from '@chat/testkit';
import WebSocket from 'ws';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { readyz, startCluster, type Cluster } from './helpers/gateways.js';

/*
 * @chat/client's edits, deletes and reactions against real gateways, on each
 * transport: what one client changes, another (on the other gateway) shows,
 * live and after it was away and rejoined with since.
 */
const webSocket = (url: string) => new WebSocket(url) as unknown as WebSocketLike;

/** A client and the messages its application shows, kept current with applyChange. */
const open: ChatClient[] = [];
function client(transport: TransportName, url: string, user: string) {
  const c = new ChatClient({ url, user, storage: null, webSocket, backoffMinMs: 100, backoffMaxMs: 500, transports: [transport] });
  open.push(c);
  const shown = new Map<string, MessageFrame>();
  const changes: ChangeEventFrame[] = [];
  c.on('message', (m) => shown.set(m.id, m));
  c.on('change', (change) => {
    changes.push(change);
    const m = shown.get(change.target);
    if (m !== undefined) shown.set(m.id, applyChange(m, change, user));
  });
  return { client: c, shown, changes };
}

describe.each(['websocket', 'sse'] as const)('@chat/client changes of messages over %s, against real gateways', (transport) => {
  let cluster: Cluster;
  const room = uniquePrefix(`changes-${transport}`);

  beforeAll(async () => {
    cluster = await startCluster(2, inject('redisUrl'), { RATE_LIMIT_PER_SEC: '1000', RATE_LIMIT_BURST: '1000' });
    await waitFor(async () => (await Promise.all(cluster.gateways.map(readyz))).every((s) => s === 200), { what: 'gateways ready' });
  });
  afterEach(() => {
    for (const c of open.splice(0)) c.close();
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it('shows another client\'s edit, reaction and delete live, and those made while it was away once it is back', async () => {
    const alice = client(transport, cluster.gateways[0]!.wsUrl, 'alice');
    const bob = client(transport, cluster.gateways[1]!.wsUrl, 'bob');
    await Promise.all([alice, bob].map(async (c) => { await c.client.connect(); await c.client.join(room); }));
    const first = await alice.client.send(room, 'helo');
    const second = await alice.client.send(room, 'second');
    await waitFor(() => bob.shown.size === 2, { what: 'bob has both messages' });
    await alice.client.edit(room, first.id, 'hello');
    expect((await bob.client.react(room, first.id, 'thumbsup')).unchanged).toBeUndefined();
    expect((await bob.client.react(room, first.id, 'thumbsup')).unchanged).toBe(true);
    await waitFor(() => alice.shown.get(first.id)?.reactions?.thumbsup === 1 && bob.shown.get(first.id)?.text === 'hello', { what: 'edit and reaction shown' });
    expect(bob.shown.get(first.id)).toMatchObject({ text: 'hello', edited: expect.any(Number), reactions: { thumbsup: 1 }, mine: ['thumbsup'] });
    await expect(bob.client.edit(room, first.id, 'not mine')).rejects.toMatchObject({ code: 'forbidden' });

    // Bob goes away once he has seen both changes; alice deletes and edits meanwhile; bob comes back and is told.
    await waitFor(() => bob.changes.length === 2, { what: 'bob saw the edit and his reaction' });
    bob.client.close();
    await alice.client.delete(room, second.id);
    await alice.client.edit(room, first.id, 'hello, edited while you were away');
    const back = client(transport, cluster.gateways[0]!.wsUrl, 'bob');
    for (const [id, m] of bob.shown) back.shown.set(id, m); // what bob's application showed
    await back.client.connect();
    await back.client.join(room, { since: [...bob.changes].at(-1)!.id });
    await waitFor(() => back.changes.length === 2, { what: 'the two changes replayed' });
    expect(back.shown.get(first.id)).toMatchObject({ text: 'hello, edited while you were away' });
    expect(back.shown.get(second.id)).toMatchObject({ text: '', deleted: true });
  });
});
