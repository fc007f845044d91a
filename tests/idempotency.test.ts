import type { AckFrame, ServerFrame } from '@chat/protocol';
import { TestClient, sleep, waitFor } from '@chat/testkit';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { readyz, startCluster, type Cluster } from './helpers/gateways.js';

/*
 * The idempotency key of send and dm (docs/protocol.md): the same user, room
 * (or recipient) and key store and deliver once, on any gateway, and every
 * repeat gets the first ack.
 */
const API_KEY = 'k'.repeat(32);

describe('idempotency keys on two gateways', () => {
  let cluster: Cluster;
  const clients: TestClient[] = [];
  beforeAll(async () => {
    cluster = await startCluster(2, inject('redisUrl'), { API_KEY, IDEMPOTENCY_TTL_S: '2', JOIN_HISTORY: '1000', RATE_LIMIT_PER_SEC: '1000', RATE_LIMIT_BURST: '1000' });
    await waitFor(async () => (await Promise.all(cluster.gateways.map(readyz))).every((s) => s === 200), { what: 'ready' });
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
  });
  afterAll(async () => {
    await cluster.stop();
  });

  const member = async (gateway: number, user: string, room: string): Promise<TestClient> => {
    const client = await TestClient.connect(cluster.gateways[gateway]!.wsUrl, user);
    clients.push(client);
    await client.request({ type: 'join', room });
    return client;
  };
  const send = (client: TestClient, room: string, text: string, key?: string) =>
    client.request(key === undefined ? { type: 'send', room, text } : { type: 'send', room, text, key });
  const texts = async (room: string): Promise<string[]> => {
    const auditor = await member(0, 'auditor', room);
    const joined = await auditor.request({ type: 'join', room });
    return joined.type === 'joined' ? joined.history.map((m) => m.text) : [];
  };

  it('answers a repeat on another gateway with the first ack, and stores and delivers the message once', async () => {
    const [a1, a2, reader] = [await member(0, 'alice', 'once'), await member(1, 'alice', 'once'), await member(1, 'reader', 'once')];
    const first = await send(a1, 'once', 'hello', 'k-1');
    expect(first).toMatchObject({ type: 'ack' });
    const repeat = await send(a2, 'once', 'hello', 'k-1');
    const repeatOfOther = await send(a1, 'once', 'a different text, same key', 'k-1');
    for (const r of [repeat, repeatOfOther]) expect({ ...r, ref: undefined }).toEqual({ ...first, ref: undefined });
    await send(a1, 'once', 'marker');
    await reader.waitFor((f: ServerFrame) => f.type === 'message' && f.text === 'marker');
    expect(reader.messages('once').map((m) => m.text)).toEqual(['hello', 'marker']);
    expect(await texts('once')).toEqual(['hello', 'marker']);
  });

  it('keeps the same key of different users, or in different rooms, as different messages', async () => {
    const alice = await member(0, 'alice', 'scope-1');
    await alice.request({ type: 'join', room: 'scope-2' });
    const bob = await member(1, 'bob', 'scope-1');
    const acks = [await send(alice, 'scope-1', 'from alice', 'same'), await send(bob, 'scope-1', 'from bob', 'same'),
      await send(alice, 'scope-2', 'elsewhere', 'same')] as AckFrame[];
    expect(acks.map((a) => a.type)).toEqual(['ack', 'ack', 'ack']);
    expect(acks[0]!.id).not.toBe(acks[1]!.id); // ids are per room: only these two share a stream
    expect(await texts('scope-1')).toEqual(['from alice', 'from bob']);
    expect(await texts('scope-2')).toEqual(['elsewhere']);
  });

  it('refuses a malformed key with bad_request, and stores nothing', async () => {
    const alice = await member(0, 'alice', 'malformed');
    for (const key of ['', 'has space', 'x'.repeat(65), 'ключ']) {
      expect(await alice.request({ type: 'send', room: 'malformed', text: 'no', key } as never)).toMatchObject({ type: 'error', code: 'bad_request' });
    }
    expect(await alice.request({ type: 'send', room: 'malformed', text: 'no', key: 7 } as never)).toMatchObject({ type: 'error', code: 'bad_request' });
    expect(await texts('malformed')).toEqual([]);
  });

  it('stores exactly one of two repeats racing on two gateways, round after round', async () => {
    const [a1, a2] = [await member(0, 'racer', 'race'), await member(1, 'racer', 'race')];
    const rounds = 60;
    for (let round = 0; round < rounds; round++) {
      const key = `race-${round}`;
      const [x, y] = await Promise.all([send(a1, 'race', `round ${round}`, key), send(a2, 'race', `round ${round}`, key)]);
      expect(x).toMatchObject({ type: 'ack' });
      expect((y as AckFrame).id).toBe((x as AckFrame).id);
    }
    const stored = await texts('race');
    expect(stored).toEqual(Array.from({ length: rounds }, (_, i) => `round ${i}`));
  });

  it('delivers a keyed direct message once, and acks its repeat with the first id', async () => {
    const sender = await member(0, 'dana', 'dm-room');
    const recipient = await member(1, 'erin', 'dm-room');
    const first = await sender.request({ type: 'dm', to: 'erin', text: 'psst', key: 'dm-1' });
    const repeat = await sender.request({ type: 'dm', to: 'erin', text: 'psst', key: 'dm-1' });
    expect((repeat as AckFrame).id).toBe((first as AckFrame).id);
    await sender.request({ type: 'dm', to: 'erin', text: 'marker' });
    await recipient.waitFor((f: ServerFrame) => f.type === 'dm' && f.text === 'marker');
    expect(recipient.ofType('dm').map((d) => d.text)).toEqual(['psst', 'marker']);
  });

  it('forgets a key after IDEMPOTENCY_TTL_S: a later send with it is a new message', async () => {
    const alice = await member(0, 'alice', 'ttl');
    const first = (await send(alice, 'ttl', 'first', 'reused')) as AckFrame;
    await sleep(2500); // IDEMPOTENCY_TTL_S=2 on these gateways
    const later = (await send(alice, 'ttl', 'second', 'reused')) as AckFrame;
    expect(later.id).not.toBe(first.id);
    expect(await texts('ttl')).toEqual(['first', 'second']);
  });

  it('gives the publish API\'s Idempotency-Key the same meaning: 201 the first time, 200 with the first {id, ts} after', async () => {
    const post = (key: string | undefined, gateway = 0) => fetch(`${cluster.gateways[gateway]!.httpUrl}/api/rooms/api-once/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json', ...(key === undefined ? {} : { 'idempotency-key': key }) },
      body: JSON.stringify({ user: 'backend', text: 'from the backend' }),
    });
    const first = await post('order-42');
    expect(first.status).toBe(201);
    const body = await first.json() as { id: string; ts: number };
    const repeat = await post('order-42', 1);
    expect(repeat.status).toBe(200);
    expect(await repeat.json()).toEqual(body);
    const bad = await post('not a key');
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ code: 'bad_request' });
    expect((await post(undefined)).status).toBe(201);
    expect(await texts('api-once')).toEqual(['from the backend', 'from the backend']);
  });
});
