import { MemoryHub } from '@chat/broker';
import { compareIds, type JoinedFrame, type MessageFrame } from '@chat/protocol';
import { HttpRefusal, TestClient, sleep } from '@chat/testkit';
import { describe, expect, it } from 'vitest';
import { trackTestGateways } from './harness.js';

const { gateway, connect, twoNodesInRoom } = trackTestGateways();

const ids = (messages: MessageFrame[]) => messages.map((m) => m.id);

describe('connection', () => {
  it('welcomes with user, a unique connection id and the node id', async () => {
    const g = await gateway({ NODE_ID: 'gw-test' });
    const a = await connect(g, 'alice');
    const b = await connect(g, 'alice');
    expect(a.welcome).toMatchObject({ type: 'welcome', user: 'alice', node: 'gw-test' });
    expect(a.welcome.connection).not.toBe(b.welcome.connection);
  });

  it('refuses a missing or malformed identity with HTTP 401 before the socket opens', async () => {
    const g = await gateway();
    for (const query of ['', '?user=', '?user=has%20space', `?user=${'x'.repeat(65)}`, '?name=alice']) {
      const error = await TestClient.connect(`${g.wsUrl}${query}`, null).catch((e: unknown) => e);
      expect(error, query).toBeInstanceOf(HttpRefusal);
      expect((error as HttpRefusal).status).toBe(401);
    }
  });

  it('answers ping with pong echoing ref', async () => {
    const a = await connect(await gateway(), 'alice');
    const pong = await a.request({ type: 'ping' });
    expect(pong).toMatchObject({ type: 'pong' });
    expect(Math.abs((pong as { ts: number }).ts - Date.now())).toBeLessThan(5000);
  });
});

describe('rooms on one node', () => {
  it('acks a send and delivers it to every member, the sender included', async () => {
    const g = await gateway();
    const a = await connect(g, 'alice');
    const b = await connect(g, 'bob');
    await a.request({ type: 'join', room: 'lobby' });
    await b.request({ type: 'join', room: 'lobby' });
    const ack = await a.request({ type: 'send', room: 'lobby', text: 'hi' });
    expect(ack).toMatchObject({ type: 'ack', id: expect.stringMatching(/^\d+-\d+$/) });
    for (const c of [a, b]) {
      const msg = await c.waitFor((f) => f.type === 'message');
      expect(msg).toEqual({ type: 'message', room: 'lobby', id: (ack as { id: string }).id, user: 'alice', text: 'hi', ts: (ack as { ts: number }).ts });
    }
  });

  it('gives the latest messages in joined, oldest first, up to JOIN_HISTORY', async () => {
    const g = await gateway({ JOIN_HISTORY: '3' });
    const a = await connect(g, 'alice');
    await a.request({ type: 'join', room: 'r' });
    for (let i = 0; i < 5; i++) await a.request({ type: 'send', room: 'r', text: `m${i}` });
    const b = await connect(g, 'bob');
    const joined = await b.request({ type: 'join', room: 'r' });
    expect(joined.type === 'joined' && joined.history.map((m) => m.text)).toEqual(['m2', 'm3', 'm4']);
    expect(joined).not.toHaveProperty('recovered');
    expect(joined).toMatchObject({ newest: (joined as JoinedFrame).history[2]!.id });
  });

  it('gives every stored message in joined when there are fewer than JOIN_HISTORY, but more than half as many', async () => {
    const g = await gateway({ JOIN_HISTORY: '10' });
    const a = await connect(g, 'alice');
    await a.request({ type: 'join', room: 'r' });
    for (let i = 0; i < 7; i++) await a.request({ type: 'send', room: 'r', text: `m${i}` });
    const joined = await (await connect(g, 'bob')).request({ type: 'join', room: 'r' });
    expect(joined.type === 'joined' && joined.history.map((m) => m.text)).toEqual(['m0', 'm1', 'm2', 'm3', 'm4', 'm5', 'm6']);
  });

  it('tells a joiner of an empty room, or one given no history, where it is (newest), so a rejoin can carry since', async () => {
    const g = await gateway({ JOIN_HISTORY: '0' });
    const a = await connect(g, 'alice');
    expect(await a.request({ type: 'join', room: 'r' })).toMatchObject({ type: 'joined', history: [], newest: '0-0' });
    const sent = (await a.request({ type: 'send', room: 'r', text: 'one' })) as { id: string };
    expect(await (await connect(g, 'bob')).request({ type: 'join', room: 'r' })).toMatchObject({ history: [], newest: sent.id });
  });

  it('pages history back with before and limit', async () => {
    const g = await gateway();
    const a = await connect(g, 'alice');
    await a.request({ type: 'join', room: 'r' });
    const sent: string[] = [];
    for (let i = 0; i < 7; i++) sent.push(((await a.request({ type: 'send', room: 'r', text: `m${i}` })) as { id: string }).id);
    const page1 = await a.request({ type: 'history', room: 'r', limit: 3 });
    expect(page1.type === 'history' && ids(page1.messages)).toEqual(sent.slice(4));
    const page2 = await a.request({ type: 'history', room: 'r', limit: 3, before: sent[4] });
    expect(page2.type === 'history' && ids(page2.messages)).toEqual(sent.slice(1, 4));
    const rest = await a.request({ type: 'history', room: 'r', before: sent[1] });
    expect(rest.type === 'history' && ids(rest.messages)).toEqual(sent.slice(0, 1));
  });

  it('refuses send and history in a room not joined, and leave of it', async () => {
    const a = await connect(await gateway(), 'alice');
    for (const frame of [{ type: 'send', room: 'x', text: 't' }, { type: 'history', room: 'x' }, { type: 'leave', room: 'x' }]) {
      expect(await a.request(frame)).toMatchObject({ type: 'error', code: 'not_joined' });
    }
  });

  it('stops delivering after leave', async () => {
    const g = await gateway();
    const a = await connect(g, 'alice');
    const b = await connect(g, 'bob');
    await a.request({ type: 'join', room: 'r' });
    await b.request({ type: 'join', room: 'r' });
    expect(await b.request({ type: 'leave', room: 'r' })).toMatchObject({ type: 'left', room: 'r' });
    await a.request({ type: 'send', room: 'r', text: 'after' });
    await a.request({ type: 'join', room: 'marker' });
    await b.request({ type: 'join', room: 'marker' });
    await a.request({ type: 'send', room: 'marker', text: 'm' });
    await b.waitFor((f) => f.type === 'message' && f.room === 'marker');
    expect(b.messages('r')).toEqual([]);
  });

  it('limits the rooms a connection may join', async () => {
    const a = await connect(await gateway({ MAX_ROOMS_PER_CONNECTION: '2' }), 'alice');
    await a.request({ type: 'join', room: 'r1' });
    await a.request({ type: 'join', room: 'r2' });
    expect(await a.request({ type: 'join', room: 'r3' })).toMatchObject({ type: 'error', code: 'forbidden' });
    expect(await a.request({ type: 'join', room: 'r2' })).toMatchObject({ type: 'joined' });
    await a.request({ type: 'leave', room: 'r1' });
    expect(await a.request({ type: 'join', room: 'r3' })).toMatchObject({ type: 'joined' });
  });
});

describe('recovery with since', () => {
  it('replays every stored message after since and says recovered', async () => {
    const g = await gateway();
    const a = await connect(g, 'alice');
    await a.request({ type: 'join', room: 'r' });
    const sent: string[] = [];
    for (let i = 0; i < 5; i++) sent.push(((await a.request({ type: 'send', room: 'r', text: `m${i}` })) as { id: string }).id);
    const b = await connect(g, 'bob');
    const joined = await b.request({ type: 'join', room: 'r', since: sent[1] });
    expect(joined).toMatchObject({ type: 'joined', recovered: true });
    expect(joined.type === 'joined' && ids(joined.history)).toEqual(sent.slice(2));
  });

  it('says recovered: false when messages after since were trimmed', async () => {
    const g = await gateway({ HISTORY_SIZE: '10', JOIN_HISTORY: '5' });
    const a = await connect(g, 'alice');
    await a.request({ type: 'join', room: 'r' });
    const first = ((await a.request({ type: 'send', room: 'r', text: 'first' })) as { id: string }).id;
    for (let i = 0; i < 40; i++) await a.request({ type: 'send', room: 'r', text: `m${i}` });
    const b = await connect(g, 'bob');
    const joined = await b.request({ type: 'join', room: 'r', since: first });
    expect(joined).toMatchObject({ type: 'joined', recovered: false });
    expect(joined.type === 'joined' && joined.history.at(-1)?.text).toBe('m39');
  });

  it('has no gap and no duplicate when messages keep flowing during joins', { timeout: 20_000 }, async () => {
    const hub = new MemoryHub();
    const unlimited = { RATE_LIMIT_PER_SEC: '100000', RATE_LIMIT_BURST: '100000' };
    const g1 = await gateway({ NODE_ID: 'n1', ...unlimited }, hub);
    const g2 = await gateway({ NODE_ID: 'n2', ...unlimited }, hub);
    const sender = await connect(g1, 'sender');
    await sender.request({ type: 'join', room: 'busy' });
    const acked: string[] = [];
    const total = 400;
    const sending = (async () => {
      for (let i = 0; i < total; i++) {
        acked.push(((await sender.request({ type: 'send', room: 'busy', text: `m${i}` })) as { id: string }).id);
        if (i % 20 === 0) await sleep(3);
      }
    })();
    // Readers on the other node join at staggered moments, half of them with since.
    const readers: Array<{ client: TestClient; since?: string }> = [];
    for (let i = 0; i < 12; i++) {
      await sleep(8);
      const since = i % 2 === 0 && acked.length > 0 ? acked[acked.length - 1 - (i % 5)] : undefined;
      const client = await connect(g2, `reader${i}`);
      client.send(since ? { type: 'join', room: 'busy', since } : { type: 'join', room: 'busy' });
      readers.push({ client, since });
    }
    await sending;
    for (const { client, since } of readers) {
      await client.waitFor((f) => f.type === 'joined');
      const upToDate = () => since === acked.at(-1) || client.messages('busy').at(-1)?.id === acked.at(-1);
      await client.until(upToDate, { what: 'the last message' });
      const got = ids(client.messages('busy'));
      const start = since === undefined ? acked.indexOf(got[0] ?? '') : acked.indexOf(since) + 1;
      expect(start).toBeGreaterThanOrEqual(0);
      expect(got).toEqual(acked.slice(start));
    }
  });
});

describe('joins while live delivery lags behind the stream', () => {
  it('never deliver a message twice, on a lagging node or after moving from a faster one', async () => {
    const hub = new MemoryHub();
    const unlimited = { RATE_LIMIT_PER_SEC: '100000', RATE_LIMIT_BURST: '100000' };
    const fast = await gateway({ NODE_ID: 'fast', ...unlimited }, hub, 0);
    const slow = await gateway({ NODE_ID: 'slow', ...unlimited }, hub, 40); // pub/sub 40 ms behind
    const writer = await connect(fast, 'writer');
    const watcher = await connect(fast, 'watcher');
    await writer.request({ type: 'join', room: 'lag' });
    await watcher.request({ type: 'join', room: 'lag' });
    await connect(slow, 'resident').then((c) => c.request({ type: 'join', room: 'lag' }));
    const acked: string[] = [];
    const writing = (async () => {
      for (let i = 0; i < 120; i++) {
        acked.push(((await writer.request({ type: 'send', room: 'lag', text: `m${i}` })) as { id: string }).id);
        await sleep(2);
      }
    })();
    const joiners: Array<{ client: TestClient; since?: string }> = [];
    for (let i = 0; i < 8; i++) {
      await sleep(25);
      // Half resume from what the fast node already showed the watcher: the slow node has not got it yet.
      const since = i % 2 === 0 ? watcher.messages('lag').at(-1)?.id : undefined;
      const client = await connect(slow, `joiner${i}`);
      client.send(since ? { type: 'join', room: 'lag', since } : { type: 'join', room: 'lag' });
      joiners.push({ client, since });
    }
    await writing;
    for (const { client, since } of joiners) {
      await client.until(() => client.messages('lag').at(-1)?.id === acked.at(-1), { what: 'the last message' });
      const got = ids(client.messages('lag'));
      expect(new Set(got).size, `${client.welcome.user} got a duplicate`).toBe(got.length);
      const start = since === undefined ? acked.indexOf(got[0]!) : acked.indexOf(since) + 1;
      expect(got).toEqual(acked.slice(start));
    }
  });
});

describe('a node whose broker was down', () => {
  it('catches up on what the room missed, in order, once, before newer messages', async () => {
    const { g2, writer, reader } = await twoNodesInRoom('r', ['before']);

    g2.broker.setAvailable(false);
    for (const text of ['during1', 'during2', 'during3']) await writer.request({ type: 'send', room: 'r', text });
    expect(reader.messages('r').map((m) => m.text)).toEqual(['before']);

    g2.broker.setAvailable(true);
    await writer.request({ type: 'send', room: 'r', text: 'after' });
    await reader.until(() => reader.messages('r').length === 5, { what: 'five messages' });
    expect(reader.messages('r').map((m) => m.text)).toEqual(['before', 'during1', 'during2', 'during3', 'after']);
    expect(ids(reader.messages('r'))).toEqual(ids(writer.messages('r')));
  });

  it('reads back messages its subscription silently missed, before the next one', async () => {
    const { g2, writer, reader } = await twoNodesInRoom('gap', ['one']);
    g2.broker.dropRoomMessages(2);
    for (const text of ['two', 'three', 'four']) await writer.request({ type: 'send', room: 'gap', text });
    await reader.until(() => reader.messages('gap').length === 4, { what: 'four messages' });
    expect(reader.messages('gap').map((m) => m.text)).toEqual(['one', 'two', 'three', 'four']);
    expect(ids(reader.messages('gap'))).toEqual(ids(writer.messages('gap')));
  });

  it('catches up again when a second outage ends while the first catch-up is still reading', async () => {
    const { g2, writer, reader } = await twoNodesInRoom('r2', ['before']);

    // The first catch-up reads at once but answers late, as a loaded Redis does.
    let release!: () => void;
    const slow = new Promise<void>((resolve) => (release = resolve));
    const after = g2.broker.after.bind(g2.broker);
    g2.broker.after = async (...args) => {
      const read = await after(...args);
      await slow;
      return read;
    };
    g2.broker.setAvailable(false);
    await writer.request({ type: 'send', room: 'r2', text: 'first outage' });
    g2.broker.setAvailable(true);
    g2.broker.setAvailable(false);
    await writer.request({ type: 'send', room: 'r2', text: 'second outage' });
    g2.broker.setAvailable(true);
    g2.broker.after = after;
    release();
    await writer.request({ type: 'send', room: 'r2', text: 'after' });
    await reader.until(() => reader.messages('r2').some((m) => m.text === 'after'), { what: 'the last message' });
    await reader.until(() => reader.messages('r2').length === 4, { what: 'four messages' });
    expect(reader.messages('r2').map((m) => m.text)).toEqual(['before', 'first outage', 'second outage', 'after']);
  });
});
