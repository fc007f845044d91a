import type { AckFrame } from '@chat/protocol';
import { TestClient, sleep } from '@chat/testkit';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startCluster, type Cluster } from './helpers/gateways.js';

describe('direct messages across three gateways', () => {
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = await startCluster(3, inject('redisUrl'));
  });
  afterAll(async () => {
    await cluster.stop();
  });

  it('reach every connection of the recipient and the sender on different gateways, never anyone else', async () => {
    const url = (i: number) => cluster.gateways[i]!.wsUrl;
    const [alice0, alice2] = [await TestClient.connect(url(0), 'alice'), await TestClient.connect(url(2), 'alice')];
    const bobs = await Promise.all([0, 1, 2].map((i) => TestClient.connect(url(i), 'bob')));
    const others = await Promise.all([0, 1, 2].map((i) => TestClient.connect(url(i), `other${i}`)));
    const ack = (await alice0.request({ type: 'dm', to: 'bob', text: 'for bob only' })) as AckFrame;
    expect(ack.type).toBe('ack');
    const expected = { type: 'dm', id: ack.id, from: 'alice', to: 'bob', text: 'for bob only', ts: ack.ts };
    for (const c of [...bobs, alice0, alice2]) expect(await c.waitFor((f) => f.type === 'dm')).toEqual(expected);
    const reply = (await bobs[1]!.request({ type: 'dm', to: 'alice', text: 'got it' })) as AckFrame;
    for (const c of [alice0, alice2, ...bobs]) await c.until(() => c.ofType('dm').length === 2, { what: 'the reply' });
    expect(alice2.ofType('dm')[1]).toMatchObject({ id: reply.id, from: 'bob', to: 'alice' });
    await sleep(100);
    for (const c of others) expect(c.ofType('dm')).toEqual([]);
    expect(await others[0]!.request({ type: 'dm', to: 'nobody-home', text: '?' })).toMatchObject({ type: 'error', code: 'offline' });
    await Promise.all([alice0, alice2, ...bobs, ...others].map((c) => c.close()));
  });
});
