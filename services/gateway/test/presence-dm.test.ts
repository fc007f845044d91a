import { MemoryHub } from '@chat/broker';
import type { AckFrame, PresenceFrame, ServerFrame } from '@chat/protocol';
import { TestClient, sleep } from '@chat/testkit';
import WebSocket from 'ws';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from './harness.js';

let n1: TestGateway;
let n2: TestGateway;
const clients: TestClient[] = [];

beforeEach(async () => {
  const hub = new MemoryHub();
  n1 = await startTestGateway({ NODE_ID: 'n1', TYPING_MIN_INTERVAL_MS: '300' }, hub);
  n2 = await startTestGateway({ NODE_ID: 'n2', TYPING_MIN_INTERVAL_MS: '300' }, hub);
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.terminate()));
  await Promise.all([n1.close(), n2.close()]);
});

async function connect(node: TestGateway, user: string): Promise<TestClient> {
  const c = await node.connect(user);
  clients.push(c);
  return c;
}
const presence = (c: TestClient) => c.ofType('presence').map((p: PresenceFrame) => `${p.user}:${p.state}`);

describe('presence across nodes', () => {
  it('lists members from every node in joined, and tells the others, not the user, who came and went', async () => {
    const ann = await connect(n1, 'ann');
    const bob = await connect(n2, 'bob');
    expect(await ann.request({ type: 'join', room: 'r' })).toMatchObject({ members: ['ann'] });
    const joined = await bob.request({ type: 'join', room: 'r' });
    expect(joined.type === 'joined' && joined.members.sort()).toEqual(['ann', 'bob']);
    await ann.waitFor((f) => f.type === 'presence' && f.user === 'bob');
    expect(presence(ann)).toEqual(['bob:online']);
    await bob.request({ type: 'leave', room: 'r' });
    await ann.waitFor((f) => f.type === 'presence' && f.state === 'offline');
    expect(presence(ann)).toEqual(['bob:online', 'bob:offline']);
    expect(presence(bob)).toEqual([]);
  });

  it('counts a user with connections on two nodes once, and offline only when both are gone', async () => {
    const watcher = await connect(n1, 'watcher');
    await watcher.request({ type: 'join', room: 'r' });
    const tab1 = await connect(n1, 'tabby');
    const tab2 = await connect(n2, 'tabby');
    await tab1.request({ type: 'join', room: 'r' });
    const second = await tab2.request({ type: 'join', room: 'r' });
    expect(second.type === 'joined' && second.members.sort()).toEqual(['tabby', 'watcher']);
    await tab1.close();
    await sleep(100);
    expect(presence(watcher)).toEqual(['tabby:online']);
    await tab2.close();
    await watcher.waitFor((f) => f.type === 'presence' && f.state === 'offline');
    expect(presence(watcher)).toEqual(['tabby:online', 'tabby:offline']);
  });

  it('sends offline promptly when a node shuts down', async () => {
    const watcher = await connect(n1, 'watcher');
    const goner = await connect(n2, 'goner');
    await watcher.request({ type: 'join', room: 'r' });
    await goner.request({ type: 'join', room: 'r' });
    await n2.close();
    await watcher.waitFor((f) => f.type === 'presence' && f.state === 'offline', { timeoutMs: 2000 });
  });
});

describe('typing', () => {
  it('reaches the other members only, is coalesced per user, and is never stored', async () => {
    const ann = await connect(n1, 'ann');
    const ann2 = await connect(n1, 'ann');
    const bob = await connect(n2, 'bob');
    const cat = await connect(n1, 'cat');
    for (const c of [ann, ann2, bob, cat]) await c.request({ type: 'join', room: 'r' });
    for (let i = 0; i < 5; i++) ann.send({ type: 'typing', room: 'r' });
    await bob.waitFor((f) => f.type === 'typing');
    await cat.waitFor((f) => f.type === 'typing');
    await sleep(100);
    expect(bob.ofType('typing')).toEqual([{ type: 'typing', room: 'r', user: 'ann' }]);
    expect(cat.ofType('typing')).toHaveLength(1);
    expect(ann.ofType('typing')).toEqual([]);
    expect(ann2.ofType('typing')).toEqual([]);
    await sleep(300);
    ann.send({ type: 'typing', room: 'r' });
    await bob.until(() => bob.ofType('typing').length === 2, { what: 'a second typing after the interval' });
    const history = await bob.request({ type: 'history', room: 'r' });
    expect(history.type === 'history' && history.messages).toEqual([]);
  });

  it('is refused in a room not joined', async () => {
    const ann = await connect(n1, 'ann');
    expect(await ann.request({ type: 'typing', room: 'elsewhere' })).toMatchObject({ type: 'error', code: 'not_joined' });
  });
});

describe('direct messages', () => {
  it('reach every connection of the recipient and of the sender on any node, and nobody else', async () => {
    const ann = await connect(n1, 'ann');
    const annOther = await connect(n2, 'ann');
    const bob1 = await connect(n1, 'bob');
    const bob2 = await connect(n2, 'bob');
    const eve = await connect(n2, 'eve');
    const ack = (await ann.request({ type: 'dm', to: 'bob', text: 'psst' })) as AckFrame;
    expect(ack).toMatchObject({ type: 'ack', id: expect.stringMatching(/^\d+-\d+$/) });
    const expected = { type: 'dm', id: ack.id, from: 'ann', to: 'bob', text: 'psst', ts: ack.ts };
    for (const c of [ann, annOther, bob1, bob2]) expect(await c.waitFor((f) => f.type === 'dm')).toEqual(expected);
    await sleep(50);
    expect(eve.ofType('dm')).toEqual([]);
    for (const c of [ann, annOther, bob1, bob2]) expect(c.ofType('dm')).toHaveLength(1);
  });

  it('to oneself arrive once per connection', async () => {
    const me1 = await connect(n1, 'me');
    const me2 = await connect(n2, 'me');
    await me1.request({ type: 'dm', to: 'me', text: 'note to self' });
    await me2.waitFor((f) => f.type === 'dm');
    await sleep(50);
    expect(me1.ofType('dm')).toHaveLength(1);
    expect(me2.ofType('dm')).toHaveLength(1);
  });

  it('to a user with no connection anywhere get offline', async () => {
    const ann = await connect(n1, 'ann');
    expect(await ann.request({ type: 'dm', to: 'ghost', text: 'hello?' })).toMatchObject({ type: 'error', code: 'offline' });
    const bob = await connect(n2, 'bob');
    await bob.close();
    await sleep(20);
    expect(await ann.request({ type: 'dm', to: 'bob', text: 'gone?' })).toMatchObject({ type: 'error', code: 'offline' });
  });

  it('can reach a user right after their welcome', async () => {
    const ann = await connect(n1, 'ann');
    for (let i = 0; i < 20; i++) {
      const fresh = await connect(n2, `fresh${i}`);
      expect(await ann.request({ type: 'dm', to: `fresh${i}`, text: 'hi' })).toMatchObject({ type: 'ack' });
      await fresh.waitFor((f) => f.type === 'dm');
    }
  });
});

describe('welcome', () => {
  it('is the first frame even when the client speaks first', async () => {
    const frames: ServerFrame[] = [];
    const ws = new WebSocket(`${n1.wsUrl}?user=eager`);
    ws.on('open', () => ws.send(JSON.stringify({ type: 'ping', ref: 'early' })));
    await new Promise<void>((resolve) => ws.on('message', (data) => {
      frames.push(JSON.parse(data.toString()) as ServerFrame);
      if (frames.length === 2) resolve();
    }));
    ws.terminate();
    expect(frames.map((f) => f.type)).toEqual(['welcome', 'pong']);
  });
});
