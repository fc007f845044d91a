import { SignJWT } from 'jose';
import type { AckFrame, JoinedFrame, OpenedFrame, RoomsFrame, ServerFrame, UnreadFrame } from '@chat/protocol';
import { TestClient, sleep, startRedisCluster, startRedisServer, uniquePrefix, waitFor, type RedisClusterHandle, type RedisServer } from '@chat/testkit';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { readyz, startCluster, startGateway, type GatewayProcess } from './helpers/gateways.js';

/** Clients of one test, closed after it. */
function clientsOf(urls: () => string[]) {
  const open: TestClient[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((c) => c.close()));
  });
  return async (gateway: number, user: string): Promise<TestClient> => {
    const client = await TestClient.connect(urls()[gateway]!, user);
    open.push(client);
    return client;
  };
}

const unreadOf = (client: TestClient, room: string): UnreadFrame[] => client.frames.filter((f): f is UnreadFrame => f.type === 'unread' && f.room === room);
const lastUnread = (client: TestClient, room: string): UnreadFrame | undefined => unreadOf(client, room).at(-1);

async function open(client: TestClient, other: string): Promise<string> {
  const opened = await client.request({ type: 'open', with: other }) as OpenedFrame;
  expect(opened).toMatchObject({ type: 'opened', with: other });
  return opened.room;
}

async function send(client: TestClient, room: string, text: string, key?: string): Promise<AckFrame> {
  const ack = await client.request({ type: 'send', room, text, ...(key !== undefined && { key }) });
  expect(ack.type, JSON.stringify(ack)).toBe('ack');
  return ack as AckFrame;
}

/** Every device's latest `unread` for the room says `count`. */
async function countsSettle(devices: TestClient[], room: string, count: number): Promise<void> {
  for (const d of devices) await d.until(() => lastUnread(d, room)?.count === count, { what: `unread ${count} in ${room} on ${d.label}` });
}

describe('conversations across three gateways on one Redis', () => {
  let gateways: GatewayProcess[];
  let stop: () => Promise<void>;
  beforeAll(async () => {
    const cluster = await startCluster(3, inject('redisUrl'));
    gateways = cluster.gateways;
    stop = cluster.stop;
  });
  afterAll(async () => {
    await stop?.();
  });
  const connect = clientsOf(() => gateways.map((g) => g.wsUrl));

  it('opens one room per pair, whoever opens it, at once on different gateways too', async () => {
    const [alice, bob] = [await connect(0, 'alice1'), await connect(1, 'bob1')];
    const [a, b] = await Promise.all([open(alice, 'bob1'), open(bob, 'alice1')]);
    expect(a).toBe(b);
    expect(await open(alice, 'bob1')).toBe(a);
    expect(await open(await connect(2, 'alice1'), 'bob1')).toBe(a);
    expect(await open(alice, 'carol1')).not.toBe(a);
  });

  it('stores messages for a user who never connected; they find them in history and in their room list', async () => {
    const alice = await connect(0, 'alice2');
    const room = await open(alice, 'dana2');
    await alice.request({ type: 'join', room });
    const first = await send(alice, room, 'are you there?');
    const second = await send(alice, room, 'ping me');
    const dana = await connect(2, 'dana2');
    const list = await dana.request({ type: 'rooms' }) as RoomsFrame;
    expect(list.rooms).toEqual([{ room, unread: 2, read: expect.any(String), with: 'alice2', last: expect.objectContaining({ id: second.id, user: 'alice2', text: 'ping me' }) }]);
    const joined = await dana.request({ type: 'join', room }) as JoinedFrame;
    expect(joined.history.map((m) => m.id)).toEqual([first.id, second.id]);
  });

  it('refuses whoever is not a member, whatever they try, and leaves open rooms as they were', async () => {
    const alice = await connect(0, 'alice3');
    const room = await open(alice, 'bob3');
    await alice.request({ type: 'join', room });
    const { id } = await send(alice, room, 'private');
    const mallory = await connect(1, 'mallory3');
    for (const frame of [
      { type: 'join', room }, { type: 'send', room, text: 'hi' }, { type: 'history', room }, { type: 'read', room, id }, { type: 'members', room },
    ] as const) {
      expect(await mallory.request(frame), JSON.stringify(frame)).toMatchObject({ type: 'error', code: 'forbidden' });
    }
    mallory.send({ type: 'typing', room });
    expect(await mallory.request({ type: 'join', room: 'dm:0123456789abcdef0123456789abcdef01234567' })).toMatchObject({ type: 'error', code: 'forbidden' });
    expect(await mallory.request({ type: 'send', room: 'lobby3', text: 'x' })).toMatchObject({ type: 'error', code: 'not_joined' });
    await mallory.request({ type: 'join', room: 'lobby3' });
    expect((await mallory.request({ type: 'send', room: 'lobby3', text: 'open as before' })).type).toBe('ack');
    await sleep(200);
    expect(alice.frames.filter((f) => f.type === 'typing' || (f.type === 'presence' && f.user === 'mallory3'))).toEqual([]);
    expect(mallory.frames.filter((f) => f.type === 'message' && f.room === room)).toEqual([]);
  });

  it('answers malformed, foreign and impossible frames with the protocol\'s codes', async () => {
    const alice = await connect(0, 'alice4');
    const room = await open(alice, 'bob4');
    await alice.request({ type: 'join', room });
    const { id } = await send(alice, room, 'one');
    const [ms] = id.split('-');
    const answers = await Promise.all([
      alice.request({ type: 'open', with: 'alice4' }),
      alice.request({ type: 'open', with: 'no spaces' }),
      alice.request({ type: 'open' } as never),
      alice.request({ type: 'read', room, id: 'yesterday' }),
      alice.request({ type: 'read', room, id: `${Number(ms) + 3_600_000}-0` }),
      alice.request({ type: 'rooms', limit: 0 }),
      alice.request({ type: 'rooms', before: 'page two please' }),
    ]);
    expect(answers.map((a) => (a.type === 'error' ? a.code : a.type))).toEqual(Array(7).fill('bad_request'));
    const back = await alice.request({ type: 'read', room, id: '1-0' }) as UnreadFrame;
    expect(back).toMatchObject({ type: 'unread', room, count: 0, read: id });
  });

  it('counts other members\' messages on every device, joined or not, once per message however often it was resent', async () => {
    const alice = await connect(0, 'alice5');
    const room = await open(alice, 'bob5');
    await alice.request({ type: 'join', room });
    const phone = await connect(1, 'bob5');
    const laptop = await connect(2, 'bob5');
    await laptop.request({ type: 'join', room });
    const one = await send(alice, room, 'one', 'k1');
    const again = await send(alice, room, 'one', 'k1');
    expect(again.id).toBe(one.id);
    const two = await send(alice, room, 'two');
    await countsSettle([phone, laptop], room, 2);
    for (const d of [phone, laptop]) {
      // A device whose position was still being read when the second message came is told once, as of the newest.
      expect(unreadOf(d, room).at(-1)?.last?.id).toBe(two.id);
      expect(unreadOf(d, room).every((u) => u.count <= 2)).toBe(true);
    }
    await countsSettle([alice], room, 0);
    expect(unreadOf(alice, room).every((u) => u.count === 0)).toBe(true);

    const read = await phone.request({ type: 'read', room, id: one.id }) as UnreadFrame;
    expect(read).toMatchObject({ type: 'unread', room, count: 1, read: one.id });
    await laptop.until(() => lastUnread(laptop, room)?.read === one.id, { what: 'the read from the phone' });
    expect(lastUnread(laptop, room)).toMatchObject({ count: 1 });
    expect(unreadOf(phone, room).filter((u) => u.read === one.id)).toHaveLength(1); // answered once, with its ref

    // A reply moves the replier's own position: their count is 0 everywhere.
    await laptop.request({ type: 'join', room });
    const reply = await send(laptop, room, 'back');
    await countsSettle([phone, laptop], room, 0);
    await countsSettle([alice], room, 1);
    expect(lastUnread(phone, room)).toMatchObject({ read: reply.id });
  });

  it('lists rooms by latest activity, a page at a time, and says who is on the other side', async () => {
    const alice = await connect(0, 'alice6');
    const rooms: Record<string, string> = {};
    for (const other of ['b6', 'c6', 'd6']) {
      rooms[other] = await open(alice, other);
      await alice.request({ type: 'join', room: rooms[other]! });
    }
    for (const other of ['c6', 'd6', 'b6']) await send(alice, rooms[other]!, `to ${other}`);
    const first = await alice.request({ type: 'rooms', limit: 2 }) as RoomsFrame;
    expect(first.rooms.map((r) => r.with)).toEqual(['b6', 'd6']);
    expect(first.next).toEqual(expect.any(String));
    const second = await alice.request({ type: 'rooms', limit: 2, before: first.next }) as RoomsFrame;
    expect(second.rooms.map((r) => [r.with, r.unread])).toEqual([['c6', 0]]);
    expect(second.next).toBeUndefined();
  });

  it('keeps every device of a user at the same count when two of them read at once', async () => {
    const alice = await connect(0, 'alice7');
    const room = await open(alice, 'bob7');
    await alice.request({ type: 'join', room });
    const devices = [await connect(1, 'bob7'), await connect(2, 'bob7'), await connect(0, 'bob7')];
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) ids.push((await send(alice, room, `m${i}`)).id);
    await countsSettle(devices, room, 6);
    await Promise.all([devices[0]!.request({ type: 'read', room, id: ids[1]! }), devices[1]!.request({ type: 'read', room, id: ids[4]! })]);
    await countsSettle(devices, room, 1);
    await sleep(300); // a late frame for the older read would show now
    for (const d of devices) expect(lastUnread(d, room)).toMatchObject({ count: 1, read: ids[4] });
  });
});

describe('conversations with tokens: the rooms and dm claims', () => {
  const SECRET = 'conversations-test-secret-at-least-32-characters';
  let gateway: GatewayProcess;
  const open: TestClient[] = [];
  beforeAll(async () => {
    gateway = await startGateway({ REDIS_URL: inject('redisUrl'), REDIS_PREFIX: uniquePrefix('convjwt'), JWT_SECRET: SECRET });
  });
  afterAll(async () => {
    await Promise.all(open.map((c) => c.close()));
    await gateway?.stop();
  });
  const as = async (claims: Record<string, unknown>) => {
    const token = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(new TextEncoder().encode(SECRET));
    const client = await TestClient.connect(`${gateway.wsUrl}?token=${token}`, null);
    open.push(client);
    return client;
  };

  it('refuses open when the token\'s rooms claim does not admit direct conversations, or its dm claim the other user', async () => {
    const teamOnly = await as({ sub: 'tess', rooms: ['team-*'] });
    expect(await teamOnly.request({ type: 'open', with: 'uma' })).toMatchObject({ type: 'error', code: 'forbidden' });
    const direct = await as({ sub: 'tess', rooms: ['team-*', 'dm:*'], dm: ['uma'] });
    expect(await direct.request({ type: 'open', with: 'uma' })).toMatchObject({ type: 'opened', with: 'uma' });
    expect(await direct.request({ type: 'open', with: 'vic' })).toMatchObject({ type: 'error', code: 'forbidden' });
    const anyone = await as({ sub: 'tess' });
    expect(await anyone.request({ type: 'open', with: 'vic' })).toMatchObject({ type: 'opened', with: 'vic' });
  });
});

describe('conversations through a gateway crash and a Redis outage', () => {
  let redis: RedisServer;
  let gateways: GatewayProcess[];
  let prefix: string;
  let stop: () => Promise<void>;
  beforeAll(async () => {
    redis = await startRedisServer({ persistence: 'aof-always' });
    const cluster = await startCluster(3, redis.url, { BROKER_TIMEOUT_MS: '1000' });
    ({ gateways, prefix, stop } = cluster);
  });
  afterAll(async () => {
    await stop?.();
    await redis?.cleanup();
  });
  const connect = clientsOf(() => gateways.map((g) => g.wsUrl));
  const allReady = (status: number, timeoutMs = 15_000) => waitFor(async () => (await Promise.all(gateways.map(readyz))).every((s) => s === status), { what: `readyz ${status}`, timeoutMs });

  it('answers a read during a Redis outage with unavailable and applies none of it', async () => {
    const alice = await connect(0, 'alice8');
    const room = await open(alice, 'bob8');
    await alice.request({ type: 'join', room });
    const [phone, laptop] = [await connect(1, 'bob8'), await connect(2, 'bob8')];
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await send(alice, room, `m${i}`)).id);
    await countsSettle([phone, laptop], room, 3);
    await redis.kill();
    await allReady(503);
    const started = Date.now();
    expect(await phone.request({ type: 'read', room, id: ids[2]! }, 6000)).toMatchObject({ type: 'error', code: 'unavailable' });
    expect(Date.now() - started).toBeLessThan(5000);
    await redis.start();
    await allReady(200);
    expect(lastUnread(laptop, room)).toMatchObject({ count: 3 });
    const list = await phone.request({ type: 'rooms' }) as RoomsFrame;
    expect(list.rooms.find((r) => r.room === room)).toMatchObject({ unread: 3 });
    expect(await phone.request({ type: 'read', room, id: ids[1]! })).toMatchObject({ type: 'unread', count: 1, read: ids[1] });
    await countsSettle([laptop], room, 1);
  });

  it('keeps counts right on the other devices when a gateway relaying them is SIGKILLed, and in the next rooms and rejoin', async () => {
    const alice = await connect(0, 'alice9');
    const room = await open(alice, 'bob9');
    await alice.request({ type: 'join', room });
    const doomed = await startGateway({ REDIS_URL: redis.url, REDIS_PREFIX: prefix, NODE_ID: 'doomed' });
    const onDoomed = await TestClient.connect(doomed.wsUrl, 'bob9');
    const survivor = await connect(2, 'bob9');
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await send(alice, room, `before ${i}`)).id);
    await countsSettle([onDoomed, survivor], room, 5);
    const killed = doomed.kill();
    for (let i = 0; i < 5; i++) ids.push((await send(alice, room, `after ${i}`)).id);
    await killed;
    await countsSettle([survivor], room, 10);
    expect(unreadOf(survivor, room).map((u) => u.count).slice(-5)).toEqual([6, 7, 8, 9, 10]);
    const back = await connect(1, 'bob9');
    const list = await back.request({ type: 'rooms' }) as RoomsFrame;
    expect(list.rooms.find((r) => r.room === room)).toMatchObject({ unread: 10, last: { id: ids[9] } });
    const joined = await back.request({ type: 'join', room }) as JoinedFrame;
    expect(joined.history.map((m) => m.id)).toEqual(ids);
  });
});

describe('conversations on a Redis Cluster', () => {
  let redis: RedisClusterHandle;
  let gateways: GatewayProcess[];
  beforeAll(async () => {
    redis = await startRedisCluster({ primaries: 3, replicasPerPrimary: 0 });
    gateways = await Promise.all(['k1', 'k2', 'k3'].map((id) => startGateway({ REDIS_URL: '', REDIS_CLUSTER_NODES: redis.seeds, REDIS_PREFIX: 'conv:', NODE_ID: id })));
    await waitFor(async () => (await Promise.all(gateways.map(readyz))).every((s) => s === 200), { what: 'all ready', timeoutMs: 15_000 });
  }, 60_000);
  afterAll(async () => {
    await Promise.all((gateways ?? []).map((g) => g.stop()));
    await redis?.stop();
  });
  const connect = clientsOf(() => gateways.map((g) => g.wsUrl));

  it('opens, counts, reads and lists with the room and each user on their own slots', async () => {
    const alice = await connect(0, 'alice');
    const [room, other] = [await open(alice, 'bob'), await open(alice, 'carol')];
    await alice.request({ type: 'join', room });
    const bobs = [await connect(1, 'bob'), await connect(2, 'bob')];
    const one = await send(alice, room, 'one');
    await send(alice, room, 'two');
    await countsSettle(bobs, room, 2);
    await bobs[0]!.request({ type: 'read', room, id: one.id });
    await countsSettle(bobs, room, 1);
    const list = await bobs[1]!.request({ type: 'rooms' }) as RoomsFrame;
    expect(list.rooms).toMatchObject([{ room, unread: 1, read: one.id, with: 'alice' }]);
    expect(((await alice.request({ type: 'rooms' })) as RoomsFrame).rooms.map((r) => r.room)).toEqual([room, other]);
    const refused: ServerFrame = await (await connect(1, 'mallory')).request({ type: 'join', room });
    expect(refused).toMatchObject({ type: 'error', code: 'forbidden' });
  });
});
