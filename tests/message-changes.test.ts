import type { AckFrame, ErrorFrame, HistoryFrame, JoinedFrame, MessageFrame, ServerFrame } from '@chat/protocol';
import { TestClient, startRedisCluster, startWebhookReceiver, waitFor, type RedisClusterHandle, type WebhookReceiver } from '@chat/testkit';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { readyz, startCluster, startGateway, type GatewayProcess } from './helpers/gateways.js';

/*
 * Edits, deletes and reactions across three gateways, on one Redis and on a
 * Redis Cluster: every member gets each change live, in the room's one order,
 * once; pages and rejoins show the current version; refusals have their codes.
 */

type ChangeFrame = Extract<ServerFrame, { type: 'edit' | 'delete' | 'reaction' }>;

function clientsOf(urls: () => string[]) {
  const open: TestClient[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((c) => c.close()));
  });
  return async (gateway: number, user: string, query = ''): Promise<TestClient> => {
    const client = await TestClient.connect(urls()[gateway]!, user, { query });
    open.push(client);
    return client;
  };
}

async function ok(client: TestClient, frame: Record<string, unknown>): Promise<AckFrame> {
  const answer = await client.request(frame as never);
  expect(answer.type, JSON.stringify(answer)).toBe('ack');
  return answer as AckFrame;
}

async function refusal(client: TestClient, frame: Record<string, unknown>): Promise<string> {
  const answer = await client.request(frame as never);
  expect(answer.type, JSON.stringify(answer)).toBe('error');
  return (answer as ErrorFrame).code;
}

/** The room's frames a client got live, messages and changes, in arrival order. */
function liveOf(client: TestClient, room: string): Array<MessageFrame | ChangeFrame> {
  return client.frames.filter((f): f is MessageFrame | ChangeFrame =>
    (f.type === 'message' || f.type === 'edit' || f.type === 'delete' || f.type === 'reaction') && f.room === room);
}

async function page(client: TestClient, room: string): Promise<MessageFrame[]> {
  return ((await client.request({ type: 'history', room })) as HistoryFrame).messages;
}

function changesScenarios(connect: (gateway: number, user: string, query?: string) => Promise<TestClient>, tag: string): void {
  it('delivers an edit, a reaction and a delete to every member on every gateway, in order, once, and pages show the current version', async () => {
    const room = `changes-${tag}-1`;
    const members = [await connect(0, 'alice'), await connect(1, 'bob'), await connect(2, 'carol')];
    for (const m of members) await m.request({ type: 'join', room });
    const [alice, bob] = members as [TestClient, TestClient, TestClient];
    const first = await ok(alice, { type: 'send', room, text: 'helo wrld' });
    const second = await ok(bob, { type: 'send', room, text: 'hi' });
    const edit = await ok(alice, { type: 'edit', room, target: first.id, text: 'hello world' });
    const like = await ok(bob, { type: 'react', room, target: first.id, reaction: 'thumbsup' });
    const gone = await ok(bob, { type: 'delete', room, target: second.id });
    const ids = [first.id, second.id, edit.id, like.id, gone.id];
    for (const m of members) {
      await m.until(() => liveOf(m, room).length >= 5, { what: `five frames on ${m.label}` });
      expect(liveOf(m, room).map((f) => f.id)).toEqual(ids);
    }
    expect(liveOf(members[2]!, room).slice(2)).toEqual([
      { type: 'edit', room, id: edit.id, target: first.id, user: 'alice', text: 'hello world', ts: edit.ts },
      { type: 'reaction', room, id: like.id, target: first.id, user: 'bob', reaction: 'thumbsup', op: 'add', count: 1, ts: like.ts },
      { type: 'delete', room, id: gone.id, target: second.id, user: 'bob', ts: gone.ts },
    ]);
    expect(await page(bob, room)).toEqual([
      { type: 'message', room, id: first.id, user: 'alice', text: 'hello world', ts: first.ts, edited: edit.ts, reactions: { thumbsup: 1 }, mine: ['thumbsup'] },
      { type: 'message', room, id: second.id, user: 'bob', text: '', ts: second.ts, deleted: true },
    ]);
    const joined = await (await connect(2, 'dave')).request({ type: 'join', room }) as JoinedFrame;
    expect(joined.history.map((m) => [m.text, m.reactions, m.mine])).toEqual([['hello world', { thumbsup: 1 }, undefined], ['', undefined, undefined]]);
  });

  it('replays the changes a member missed when it rejoins with since, after the messages in their current version', async () => {
    const room = `changes-${tag}-2`;
    const alice = await connect(0, 'alice');
    await alice.request({ type: 'join', room });
    const old = await ok(alice, { type: 'send', room, text: 'old' });
    const away = await connect(1, 'bob');
    await away.request({ type: 'join', room });
    await away.until(() => liveOf(away, room).length === 0 && away.frames.some((f) => f.type === 'joined'), { what: 'joined' });
    await away.close();
    const fresh = await ok(alice, { type: 'send', room, text: 'fresh' });
    const edit = await ok(alice, { type: 'edit', room, target: old.id, text: 'old, edited' });
    const heart = await ok(alice, { type: 'react', room, target: fresh.id, reaction: 'heart' });
    const back = await connect(2, 'bob');
    const joined = await back.request({ type: 'join', room, since: old.id }) as JoinedFrame;
    expect(joined.recovered).toBe(true);
    expect(joined.history).toEqual([expect.objectContaining({ id: fresh.id, text: 'fresh', reactions: { heart: 1 } })]);
    await back.until(() => liveOf(back, room).length === 2, { what: 'the replayed changes' });
    expect(liveOf(back, room).map((f) => [f.type, f.id])).toEqual([['edit', edit.id], ['reaction', heart.id]]);
    // The replay came right after `joined`, before anything live.
    expect(back.frames.indexOf(joined) + 1).toBe(back.frames.findIndex((f) => f.type === 'edit'));
  });

  it('refuses what may not change, each with its code', async () => {
    const room = `changes-${tag}-3`;
    const [alice, bob] = [await connect(0, 'alice'), await connect(1, 'bob')];
    for (const c of [alice, bob]) await c.request({ type: 'join', room });
    const mine = await ok(alice, { type: 'send', room, text: 'mine' });
    await alice.request({ type: 'join', room: `${room}-other` });
    const elsewhere = await ok(alice, { type: 'send', room: `${room}-other`, text: 'elsewhere' });
    expect(await refusal(bob, { type: 'edit', room, target: mine.id, text: 'not yours' })).toBe('forbidden');
    expect(await refusal(bob, { type: 'delete', room, target: mine.id })).toBe('forbidden');
    expect(await refusal(alice, { type: 'edit', room, target: elsewhere.id, text: 'wrong room' })).toBe('not_found');
    expect(await refusal(bob, { type: 'react', room, target: mine.id, reaction: 'Thumbs Up' })).toBe('bad_request');
    expect(await refusal(await connect(2, 'carol'), { type: 'react', room, target: mine.id, reaction: 'heart' })).toBe('not_joined');
    await ok(alice, { type: 'delete', room, target: mine.id });
    expect(await refusal(alice, { type: 'edit', room, target: mine.id, text: 'too late' })).toBe('gone');
    expect(await refusal(bob, { type: 'react', room, target: mine.id, reaction: 'heart' })).toBe('gone');
    const moderator = await connect(2, 'mod', `mod=${encodeURIComponent(`changes-${tag}-*`)}`);
    expect(moderator.frames.find((f) => f.type === 'welcome')).toMatchObject({ mod: [`changes-${tag}-*`] });
    await moderator.request({ type: 'join', room: `${room}-other` });
    await ok(moderator, { type: 'delete', room: `${room}-other`, target: elsewhere.id });
  });

  it('counts 50 racing add/remove pairs of one reaction from two gateways exactly, and every member ends at the same count', async () => {
    const room = `changes-${tag}-4`;
    const [alice, bob] = [await connect(0, 'alice'), await connect(1, 'bob')];
    for (const c of [alice, bob]) await c.request({ type: 'join', room });
    const target = await ok(alice, { type: 'send', room, text: 'react to me' });
    const acks = await Promise.all(Array.from({ length: 50 }, (_, i) => {
      const [first, second] = i % 2 === 0 ? [alice, bob] : [bob, alice];
      return Promise.all([
        first.request({ type: 'react', room, target: target.id, reaction: 'fire' }),
        second.request({ type: 'unreact', room, target: target.id, reaction: 'fire' }),
      ]);
    }));
    const changed = acks.flat().filter((a) => a.type === 'ack' && !(a as AckFrame).unchanged).length;
    const reactions = () => liveOf(alice, room).filter((f): f is Extract<ChangeFrame, { type: 'reaction' }> => f.type === 'reaction');
    for (const c of [alice, bob]) await c.until(() => liveOf(c, room).filter((f) => f.type === 'reaction').length === changed, { what: 'every reaction frame' });
    const counts = reactions().map((r) => r.count);
    // Two users toggle one reaction: the count is the number of users reacting, 0..2, never below, never doubled.
    expect(counts.every((n) => n >= 0 && n <= 2)).toBe(true);
    const shown = (await page(bob, room))[0]!.reactions?.fire ?? 0;
    expect(counts.at(-1) ?? 0).toBe(shown);
    const mine = await Promise.all([alice, bob].map(async (c) => (await page(c, room))[0]!.mine?.includes('fire') === true));
    expect(mine.filter(Boolean).length).toBe(shown);
  });

  it('counts no change as unread, and takes a deleted message off the counts of every device of those who had not read it', async () => {
    const alice = await connect(0, `alice-${tag}-u`);
    const opened = await alice.request({ type: 'open', with: `bob-${tag}-u` });
    const room = (opened as { room: string }).room;
    await alice.request({ type: 'join', room });
    const bobs = [await connect(1, `bob-${tag}-u`), await connect(2, `bob-${tag}-u`)];
    const unread = (c: TestClient) => c.frames.filter((f): f is Extract<ServerFrame, { type: 'unread' }> => f.type === 'unread' && f.room === room);
    const first = await ok(alice, { type: 'send', room, text: 'first' });
    const second = await ok(alice, { type: 'send', room, text: 'second' });
    for (const b of bobs) await b.until(() => unread(b).at(-1)?.count === 2, { what: `unread 2 on ${b.label}` });
    const before = bobs.map((b) => unread(b).length);
    await ok(alice, { type: 'edit', room, target: first.id, text: 'first, edited' });
    await ok(alice, { type: 'react', room, target: first.id, reaction: 'wave' });
    await ok(alice, { type: 'delete', room, target: second.id });
    for (const b of bobs) await b.until(() => unread(b).at(-1)?.count === 1, { what: `unread 1 on ${b.label}` });
    // One unread frame for the delete, none for the edit or the reaction.
    expect(bobs.map((b) => unread(b).length)).toEqual(before.map((n) => n + 1));
    const list = await bobs[0]!.request({ type: 'rooms' }) as Extract<ServerFrame, { type: 'rooms' }>;
    expect(list.rooms[0]).toMatchObject({ room, unread: 1, last: { id: first.id, text: 'first, edited' } });
  });

  it('settles a delete racing an edit the same way for every member: deleted, the edit before it or refused', async () => {
    const room = `changes-${tag}-5`;
    const [alice, bob] = [await connect(0, 'alice'), await connect(1, 'bob', `mod=${encodeURIComponent(room)}`)];
    for (const c of [alice, bob]) await c.request({ type: 'join', room });
    const target = await ok(alice, { type: 'send', room, text: 'contested' });
    const [edited, deleted] = await Promise.all([
      alice.request({ type: 'edit', room, target: target.id, text: 'contested, edited' }),
      bob.request({ type: 'delete', room, target: target.id }),
    ]);
    expect(deleted.type).toBe('ack');
    const expected = edited.type === 'ack' ? ['message', 'edit', 'delete'] : ['message', 'delete'];
    if (edited.type !== 'ack') expect(edited).toMatchObject({ code: 'gone' });
    for (const c of [alice, bob]) {
      await c.until(() => liveOf(c, room).length === expected.length, { what: 'the race settled' });
      expect(liveOf(c, room).map((f) => f.type)).toEqual(expected);
    }
    expect(await page(alice, room)).toEqual([expect.objectContaining({ id: target.id, text: '', deleted: true })]);
  });
}

describe('message changes across three gateways on one Redis', () => {
  let gateways: GatewayProcess[];
  let prefix: string;
  let stop: () => Promise<void>;
  let receiver: WebhookReceiver;
  beforeAll(async () => {
    receiver = await startWebhookReceiver();
    const cluster = await startCluster(3, inject('redisUrl'), {
      WEBHOOK_URL: receiver.url, WEBHOOK_SECRET: 'changes-webhook-secret', WEBHOOK_EVENTS: 'message.created,message.updated,message.deleted',
      // Deliveries are at least once, eventually: a wake-up is best effort and the sweep is what bounds the wait,
      // and a POST that times out on a loaded machine is retried. Short ones keep the test's wait short.
      WEBHOOK_SWEEP_MS: '500', WEBHOOK_RETRY_MIN_MS: '200', WEBHOOK_RETRY_MAX_MS: '500',
    });
    gateways = cluster.gateways;
    prefix = cluster.prefix;
    stop = cluster.stop;
  });
  afterAll(async () => {
    await stop?.();
    await receiver?.close();
  });
  const connect = clientsOf(() => gateways.map((g) => g.wsUrl));
  changesScenarios(connect, 'redis');

  it('tells webhooks of an edit and a delete, and no event carries the deleted text', async () => {
    const room = 'changes-webhooks';
    const alice = await connect(0, 'alice');
    await alice.request({ type: 'join', room });
    const kept = await ok(alice, { type: 'send', room, text: 'kept' });
    const edit = await ok(alice, { type: 'edit', room, target: kept.id, text: 'kept, edited' });
    const secret = await ok(alice, { type: 'send', room, text: 'the password is hunter2' });
    await ok(alice, { type: 'delete', room, target: secret.id });
    const events = () => receiver.accepted().map((d) => d.event!).filter((e) => (e.data as { room?: string }).room === room);
    await waitFor(() => events().some((e) => e.type === 'message.deleted'), { what: 'message.deleted delivered', timeoutMs: 30_000 });
    await waitFor(() => events().some((e) => e.type === 'message.updated'), { what: 'message.updated delivered', timeoutMs: 30_000 });
    const updated = events().find((e) => e.type === 'message.updated')!;
    expect(updated.data).toMatchObject({ room, message: { id: kept.id, text: 'kept, edited', edited: edit.ts }, change: { type: 'edit', id: edit.id } });
    expect(events().find((e) => e.type === 'message.deleted')!.data).toMatchObject({ room, author: 'alice', change: { type: 'delete', target: secret.id } });
    // message.created may have gone out before the delete; what reports the change never quotes the text.
    const changeEvents = receiver.deliveries.filter((d) => d.event !== undefined && d.event.type !== 'message.created' && d.body.includes(room));
    expect(changeEvents.length).toBeGreaterThanOrEqual(2);
    expect(JSON.stringify(changeEvents.map((d) => d.body))).not.toContain('hunter2');
  });

  it('replays an edit to a member whose gateway was SIGKILLed between the edit\'s append and its delivery', async () => {
    const room = 'changes-sigkill';
    const victim = await startGateway({ REDIS_URL: inject('redisUrl'), REDIS_PREFIX: prefix, NODE_ID: 'gw-victim' });
    try {
      const alice = await connect(0, 'alice');
      await alice.request({ type: 'join', room });
      const first = await ok(alice, { type: 'send', room, text: 'before' });
      const bob = await TestClient.connect(victim.wsUrl, 'bob');
      const joined = await bob.request({ type: 'join', room }) as JoinedFrame;
      process.kill(victim.pid, 'SIGSTOP'); // appended and published from here on, never delivered by it
      const edit = await ok(alice, { type: 'edit', room, target: first.id, text: 'after' });
      await victim.kill();
      await bob.close();
      expect(liveOf(bob, room).some((f) => f.id === edit.id)).toBe(false);
      const back = await connect(1, 'bob');
      const rejoined = await back.request({ type: 'join', room, since: joined.newest ?? first.id }) as JoinedFrame;
      expect(rejoined.recovered).toBe(true);
      await back.until(() => liveOf(back, room).some((f) => f.id === edit.id), { what: 'the edit replayed' });
    } finally {
      await victim.kill().catch(() => {});
    }
  });
});

describe('message changes on a Redis Cluster', () => {
  let redis: RedisClusterHandle;
  let gateways: GatewayProcess[];
  beforeAll(async () => {
    redis = await startRedisCluster({ primaries: 3, replicasPerPrimary: 0 });
    gateways = await Promise.all(['c1', 'c2', 'c3'].map((id) => startGateway({ REDIS_URL: '', REDIS_CLUSTER_NODES: redis.seeds, REDIS_PREFIX: 'changes:', NODE_ID: id })));
    await waitFor(async () => (await Promise.all(gateways.map(readyz))).every((s) => s === 200), { what: 'all ready', timeoutMs: 15_000 });
  }, 60_000);
  afterAll(async () => {
    await Promise.all((gateways ?? []).map((g) => g.stop()));
    await redis?.stop();
  });
  changesScenarios(clientsOf(() => gateways.map((g) => g.wsUrl)), 'cluster');
});
