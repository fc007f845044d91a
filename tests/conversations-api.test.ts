import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import SwaggerParser from '@apidevtools/swagger-parser';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { Redis } from 'ioredis';
import { TestClient, startRedisServer, waitFor, type RedisServer } from '@chat/testkit';
import type { AckFrame, JoinedFrame, LeftFrame, OpenedFrame, RoomsFrame, UnreadFrame } from '@chat/protocol';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parse } from 'yaml';
import { startCluster, startGateway, type Cluster, type GatewayProcess } from './helpers/gateways.js';

const KEY = 'conversations-api-test-key';
const SPEC_PATH = new URL('../docs/openapi.yaml', import.meta.url);
const auth = { Authorization: `Bearer ${KEY}` };

type Operation = { tags?: string[]; responses: Record<string, { content?: { 'application/json': { schema: object } } }> };
type Spec = { paths: Record<string, Record<string, Operation>> };

/** A request as the documented route, method and the status it must get. */
interface Case {
  path: string;
  method: 'get' | 'post' | 'put' | 'delete';
  status: number;
  send(): Promise<Response>;
}

const unreadOf = (client: TestClient, room: string): UnreadFrame[] => client.frames.filter((f): f is UnreadFrame => f.type === 'unread' && f.room === room);
const lastUnread = (client: TestClient, room: string): UnreadFrame | undefined => unreadOf(client, room).at(-1);

/** The room of a direct conversation, as the gateway names it (services/gateway/src/conversations/direct-rooms.ts). */
const directRoom = (a: string, b: string): string => `dm:${createHash('sha256').update(a < b ? `${a}|${b}` : `${b}|${a}`).digest('hex').slice(0, 40)}`;

describe('the server API for conversations', () => {
  let cluster: Cluster;
  let throttled: GatewayProcess;
  let redisless: GatewayProcess;
  let ownRedis: RedisServer;
  let redis: Redis;
  const clients: TestClient[] = [];
  const connect = async (gateway: number, user: string): Promise<TestClient> => {
    const client = await TestClient.connect(cluster.gateways[gateway]!.wsUrl, user);
    clients.push(client);
    return client;
  };
  const api = (path: string, init: RequestInit = {}, gateway = 0) =>
    fetch(`${cluster.gateways[gateway]!.httpUrl}${path}`, { ...init, headers: { ...auth, ...init.headers } });
  /** A call that must answer 200: its body. */
  const ok = async <T = Record<string, unknown>>(path: string, init: RequestInit = {}, gateway = 0): Promise<T> => {
    const response = await api(path, init, gateway);
    const body = await response.json() as T;
    expect(response.status, `${init.method ?? 'GET'} ${path}: ${JSON.stringify(body)}`).toBe(200);
    return body;
  };
  const put = (body?: object): RequestInit => ({ method: 'PUT', ...(body !== undefined && { body: JSON.stringify(body) }) });
  const post = (body: object): RequestInit => ({ method: 'POST', body: JSON.stringify(body) });
  const publish = async (room: string, user: string, text: string): Promise<string> => {
    const response = await api(`/api/rooms/${room}/messages`, post({ user, text }));
    expect(response.status).toBe(201);
    return ((await response.json()) as { id: string }).id;
  };
  /**
   * Waits until `count` gateways listen to the room. An API call answers once its
   * user commands are published; a gateway that did not listen to the room yet
   * starts only when it has handled the command, so a message posted before then
   * is not counted live there (the next one brings the right count).
   */
  const listening = (room: string, count: number) => waitFor(async () => {
    const [, subscribers] = (await redis.call('PUBSUB', 'NUMSUB', `${cluster.prefix}room:{${room}}`)) as [string, number];
    return subscribers === count;
  }, { what: `${count} gateways listening to ${room}` });

  beforeAll(async () => {
    cluster = await startCluster(3, inject('redisUrl'), { API_KEY: KEY, MAX_FRAME_BYTES: '4096' });
    throttled = await startGateway({ REDIS_URL: inject('redisUrl'), REDIS_PREFIX: cluster.prefix, API_KEY: KEY, API_RATE_LIMIT_PER_SEC: '0.001', API_RATE_LIMIT_BURST: '1' });
    ownRedis = await startRedisServer();
    redisless = await startGateway({ REDIS_URL: ownRedis.url, API_KEY: KEY, BROKER_TIMEOUT_MS: '300' });
    redis = new Redis(inject('redisUrl'));
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.terminate()));
    await Promise.all([cluster?.stop(), throttled?.stop(), redisless?.stop()]);
    await ownRedis?.cleanup();
    redis?.disconnect();
  });

  it('answers every documented route and status as documented', async () => {
    const spec = (await SwaggerParser.dereference(parse(readFileSync(SPEC_PATH, 'utf8')))) as unknown as Spec;
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    await ok('/api/rooms/cv-doc/membership', put({ members: ['cv-ann'] }));
    const posted = await publish('cv-doc', 'cv-ann', 'hello');
    // Only `open` makes a dm: room, and this API will not list members of one: a room used
    // otherwise can only be written straight into Redis.
    await redis.hset(`${cluster.prefix}room:{${directRoom('cv-x', 'cv-y')}}:conv`, 'mo', '1');

    const on = (gateway: GatewayProcess, path: string, init: RequestInit = {}) => () =>
      fetch(`${gateway.httpUrl}${path}`, { ...init, headers: { ...auth, ...init.headers } });
    const noKey = (path: string, init: RequestInit) => () => fetch(`${cluster.gateways[1]!.httpUrl}${path}`, { ...init, headers: { Authorization: 'Bearer wrong' } });
    const big = JSON.stringify({ members: ['x'.repeat(5000)] });
    const routes: Array<[path: string, method: Case['method'], concrete: string, body?: object]> = [
      ['/api/rooms/{room}/membership', 'get', '/api/rooms/cv-doc/membership'],
      ['/api/rooms/{room}/membership', 'put', '/api/rooms/cv-doc/membership', { members: ['cv-ann'] }],
      ['/api/rooms/{room}/membership/{user}', 'put', '/api/rooms/cv-doc/membership/cv-bo'],
      ['/api/rooms/{room}/membership/{user}', 'delete', '/api/rooms/cv-doc/membership/cv-bo'],
      ['/api/users/{user}/rooms', 'get', '/api/users/cv-ann/rooms'],
      ['/api/users/{user}/rooms/{room}/read', 'post', '/api/users/cv-ann/rooms/cv-doc/read', { id: posted }],
      ['/api/users/{user}/open', 'post', '/api/users/cv-ann/open', { with: 'cv-bo' }],
    ];
    const cases: Case[] = [];
    for (const [path, method, concrete, body] of routes) {
      const init = { method: method.toUpperCase(), body: body === undefined ? undefined : JSON.stringify(body) };
      cases.push(
        { path, method, status: 200, send: on(cluster.gateways[1]!, concrete, init) },
        { path, method, status: 401, send: noKey(concrete, init) },
        { path, method, status: 503, send: on(redisless, concrete, init) },
        { path, method, status: 429, send: async () => (await on(throttled, concrete, init)(), on(throttled, concrete, init)()) },
      );
    }
    const refusal = (path: string, method: Case['method'], status: number, concrete: string, body?: string): Case =>
      ({ path, method, status, send: () => api(concrete, { method: method.toUpperCase(), body }) });
    cases.push(
      refusal('/api/rooms/{room}/membership', 'get', 400, '/api/rooms/cv-doc/membership?limit=0'),
      refusal('/api/rooms/{room}/membership', 'put', 400, '/api/rooms/cv-doc/membership', '{"members":"cv-ann"}'),
      refusal('/api/rooms/{room}/membership', 'put', 403, '/api/rooms/dm:cv/membership'),
      refusal('/api/rooms/{room}/membership', 'put', 413, '/api/rooms/cv-doc/membership', big),
      refusal('/api/rooms/{room}/membership/{user}', 'put', 400, '/api/rooms/cv-doc/membership/no!pe'),
      refusal('/api/rooms/{room}/membership/{user}', 'put', 403, '/api/rooms/dm:cv/membership/cv-ann'),
      refusal('/api/rooms/{room}/membership/{user}', 'put', 409, '/api/rooms/cv-open/membership/cv-ann'),
      refusal('/api/rooms/{room}/membership/{user}', 'delete', 400, '/api/rooms/bad%20room/membership/cv-ann'),
      refusal('/api/rooms/{room}/membership/{user}', 'delete', 403, '/api/rooms/dm:cv/membership/cv-ann'),
      refusal('/api/rooms/{room}/membership/{user}', 'delete', 409, '/api/rooms/cv-open/membership/cv-ann'),
      refusal('/api/users/{user}/rooms', 'get', 400, '/api/users/cv-ann/rooms?before=page-two'),
      refusal('/api/users/{user}/rooms/{room}/read', 'post', 400, '/api/users/cv-ann/rooms/cv-doc/read', '{"id":"yesterday"}'),
      refusal('/api/users/{user}/rooms/{room}/read', 'post', 403, '/api/users/cv-zed/rooms/cv-doc/read', JSON.stringify({ id: posted })),
      refusal('/api/users/{user}/rooms/{room}/read', 'post', 413, '/api/users/cv-ann/rooms/cv-doc/read', big),
      refusal('/api/users/{user}/open', 'post', 400, '/api/users/cv-ann/open', '{"with":"cv-ann"}'),
      refusal('/api/users/{user}/open', 'post', 409, '/api/users/cv-x/open', '{"with":"cv-y"}'),
      refusal('/api/users/{user}/open', 'post', 413, '/api/users/cv-ann/open', big),
    );

    const documented = Object.entries(spec.paths).flatMap(([path, methods]) => Object.entries(methods)
      .filter(([m, op]) => m !== 'parameters' && op.tags?.includes('conversations') === true)
      .flatMap(([method, op]) => Object.keys(op.responses).map((status) => `${method} ${path} ${status}`)));
    expect(cases.map((c) => `${c.method} ${c.path} ${c.status}`).sort()).toEqual([...new Set(documented)].sort());

    // The redisless gateway's Redis goes away: every route must say 503.
    await ownRedis.kill();
    for (const c of cases) {
      const response = await c.send();
      const what = `${c.method.toUpperCase()} ${c.path} -> ${c.status}`;
      const body: unknown = await response.json();
      expect(response.status, `${what}: ${JSON.stringify(body)}`).toBe(c.status);
      expect(response.headers.get('content-type'), what).toBe('application/json');
      const validate = ajv.compile(spec.paths[c.path]![c.method]!.responses[String(c.status)]!.content!['application/json'].schema);
      expect(validate(body), `${what}: ${JSON.stringify(body)} ${ajv.errorsText(validate.errors)}`).toBe(true);
    }
    const wrongMethod = await api('/api/users/cv-ann/rooms', { method: 'DELETE' });
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.get('allow')).toBe('GET');
  });

  it('makes a room members-only: connected outsiders leave it on every gateway at once, members stay', async () => {
    const outsiders = [await connect(0, 'mo-out'), await connect(2, 'mo-out')];
    const idle = await connect(1, 'mo-out'); // connected, never joined
    const member = await connect(1, 'mo-in');
    for (const c of [...outsiders, member]) await c.request({ type: 'join', room: 'mo-room' });
    expect(await ok('/api/rooms/mo-room/membership')).toEqual({ room: 'mo-room', membersOnly: false, members: [], count: 0, next: null });

    const made = await ok('/api/rooms/mo-room/membership', put({ members: ['mo-in', 'mo-new', 'mo-in'] }), 2);
    expect(made).toEqual({ room: 'mo-room', added: ['mo-in', 'mo-new'], left: ['mo-out'] });
    for (const c of outsiders) {
      const left = await c.waitFor((f) => f.type === 'left' && f.room === 'mo-room') as LeftFrame;
      expect(left.ref).toBeUndefined();
      expect(await c.request({ type: 'send', room: 'mo-room', text: 'still here?' })).toMatchObject({ type: 'error', code: 'forbidden' });
      expect(await c.request({ type: 'join', room: 'mo-room' })).toMatchObject({ type: 'error', code: 'forbidden' });
    }
    expect(await idle.request({ type: 'join', room: 'mo-room' })).toMatchObject({ type: 'error', code: 'forbidden' });
    const ack = await member.request({ type: 'send', room: 'mo-room', text: 'members only now' }) as AckFrame;
    expect(ack.type).toBe('ack');
    await member.until(() => member.messages('mo-room').some((m) => m.id === ack.id), { what: 'the member still gets the room' });
    expect(member.ofType('left')).toEqual([]);

    expect(await ok('/api/rooms/mo-room/membership', {}, 1)).toEqual({ room: 'mo-room', membersOnly: true, members: ['mo-in', 'mo-new'], count: 2, next: null });
    expect(await ok('/api/rooms/mo-room/membership?limit=1')).toEqual({ room: 'mo-room', membersOnly: true, members: ['mo-in'], count: 2, next: 'mo-in' });
    expect(await ok('/api/rooms/mo-room/membership?after=mo-in')).toEqual({ room: 'mo-room', membersOnly: true, members: ['mo-new'], count: 2, next: null });
    // Once the outsiders are gone from the room, a repeat finds nothing to do.
    await waitFor(async () => (await ok<{ members: Array<{ user: string }> }>('/api/rooms/mo-room/members')).members.every((m) => m.user !== 'mo-out'), { what: 'mo-out gone' });
    expect(await ok('/api/rooms/mo-room/membership', put())).toEqual({ room: 'mo-room', added: [], left: [] });
  });

  it('adds a member, whose connections get unread counts without joining, and removes them: they leave and are refused', async () => {
    await ok('/api/rooms/ar-room/membership', put({ members: ['ar-host'] }));
    const host = await connect(0, 'ar-host');
    await host.request({ type: 'join', room: 'ar-room' });
    const [phone, laptop] = [await connect(1, 'ar-new'), await connect(2, 'ar-new')];

    expect(await ok('/api/rooms/ar-room/membership/ar-new', { method: 'PUT' }, 1)).toEqual({ room: 'ar-room', user: 'ar-new', added: true, nodes: 2 });
    // Each connection is told of the new room at once, with nothing unread yet.
    for (const d of [phone, laptop]) await d.until(() => lastUnread(d, 'ar-room')?.count === 0, { what: `the new room on ${d.label}` });
    await listening('ar-room', 3);
    const one = await host.request({ type: 'send', room: 'ar-room', text: 'one' }) as AckFrame;
    const two = await host.request({ type: 'send', room: 'ar-room', text: 'two' }) as AckFrame;
    for (const d of [phone, laptop]) {
      await d.until(() => lastUnread(d, 'ar-room')?.count === 2, { what: `unread 2 on ${d.label}` });
      expect(lastUnread(d, 'ar-room')).toMatchObject({ last: { id: two.id, text: 'two' } });
      expect(unreadOf(d, 'ar-room').map((u) => u.count).every((n) => n <= 2)).toBe(true);
      expect(d.messages('ar-room')).toEqual([]); // counted, not delivered: they did not join
    }
    expect(one.type).toBe('ack');
    expect(await ok('/api/rooms/ar-room/membership/ar-new', { method: 'PUT' })).toMatchObject({ added: false });
    const joined = await phone.request({ type: 'join', room: 'ar-room' }) as JoinedFrame;
    expect(joined.history.map((m) => m.text)).toEqual(['one', 'two']);

    expect(await ok('/api/rooms/ar-room/membership/ar-new', { method: 'DELETE' }, 2)).toEqual({ room: 'ar-room', user: 'ar-new', removed: true, nodes: 2 });
    // Refused as soon as the removal is answered, whether or not `left` got there first.
    expect(await phone.request({ type: 'send', room: 'ar-room', text: 'am I still in?' })).toMatchObject({ type: 'error', code: 'forbidden' });
    const left = await phone.waitFor((f) => f.type === 'left' && f.room === 'ar-room') as LeftFrame;
    expect(left.ref).toBeUndefined();
    // The laptop never joined: it is told too, so its room list and total drop the room.
    expect(await laptop.waitFor((f) => f.type === 'left' && f.room === 'ar-room')).toMatchObject({ type: 'left', room: 'ar-room' });
    for (const d of [phone, laptop]) {
      expect(await d.request({ type: 'send', room: 'ar-room', text: 'hello?' })).toMatchObject({ type: 'error', code: 'forbidden' });
      expect(await d.request({ type: 'join', room: 'ar-room' })).toMatchObject({ type: 'error', code: 'forbidden' });
      expect(await d.request({ type: 'read', room: 'ar-room', id: two.id })).toMatchObject({ type: 'error', code: 'forbidden' });
    }
    expect(await ok('/api/rooms/ar-room/membership')).toMatchObject({ members: ['ar-host'], count: 1 });
    expect(await ok('/api/rooms/ar-room/membership/ar-new', { method: 'DELETE' })).toMatchObject({ removed: false });
    expect((await ok<{ rooms: unknown[] }>('/api/users/ar-new/rooms')).rooms).toEqual([]);
  });

  it('moves a read position forward only, tells every connection of the user, and refuses what the protocol refuses', async () => {
    await ok('/api/rooms/rd-room/membership', put({ members: ['rd-me', 'rd-other'] }));
    const devices = [await connect(0, 'rd-me'), await connect(1, 'rd-me'), await connect(2, 'rd-me')];
    const ids: string[] = [];
    for (const text of ['a', 'b', 'c']) ids.push(await publish('rd-room', 'rd-other', text));
    for (const d of devices) await d.until(() => lastUnread(d, 'rd-room')?.count === 3, { what: `unread 3 on ${d.label}` });

    expect(await ok('/api/users/rd-me/rooms/rd-room/read', post({ id: ids[0]! }), 1)).toEqual({ room: 'rd-room', user: 'rd-me', count: 2, read: ids[0] });
    for (const d of devices) {
      await d.until(() => lastUnread(d, 'rd-room')?.read === ids[0], { what: `the read on ${d.label}` });
      expect(lastUnread(d, 'rd-room')).toMatchObject({ count: 2 });
      expect(lastUnread(d, 'rd-room')?.ref).toBeUndefined();
    }
    // Never back: an older id answers where the position is.
    expect(await ok('/api/users/rd-me/rooms/rd-room/read', post({ id: '1-0' }), 2)).toEqual({ room: 'rd-room', user: 'rd-me', count: 2, read: ids[0] });
    const [ms] = ids[2]!.split('-');
    const ahead = await api('/api/users/rd-me/rooms/rd-room/read', post({ id: `${Number(ms) + 3_600_000}-0` }));
    expect(ahead.status).toBe(400);
    expect(await ahead.json()).toMatchObject({ code: 'bad_request' });
    const stranger = await api('/api/users/rd-stranger/rooms/rd-room/read', post({ id: ids[0]! }));
    expect(stranger.status).toBe(403);
    expect(await stranger.json()).toMatchObject({ code: 'forbidden' });
    const open = await api('/api/users/rd-me/rooms/rd-open/read', post({ id: ids[0]! }));
    expect(open.status).toBe(403);

    expect(await ok('/api/users/rd-me/rooms/rd-room/read', post({ id: ids[2]! }))).toMatchObject({ count: 0, read: ids[2] });
    for (const d of devices) await d.until(() => lastUnread(d, 'rd-room')?.count === 0, { what: `unread 0 on ${d.label}` });
    const list = await ok<{ rooms: unknown[] }>('/api/users/rd-me/rooms');
    expect(list.rooms).toEqual([{ room: 'rd-room', unread: 0, read: ids[2], last: expect.objectContaining({ type: 'message', id: ids[2], user: 'rd-other', text: 'c' }) }]);
  });

  it('lists a user\'s rooms exactly as the rooms frame does, page by page', async () => {
    await ok('/api/users/ls-me/open', post({ with: 'ls-b' }));
    await ok('/api/rooms/ls-team/membership', put({ members: ['ls-me', 'ls-b'] }));
    await ok('/api/rooms/ls-quiet/membership', put({ members: ['ls-me'] }));
    const me = await connect(2, 'ls-me');
    const withC = (await me.request({ type: 'open', with: 'ls-c' }) as OpenedFrame).room;
    await publish('ls-team', 'ls-b', 'team one');
    await publish(withC, 'ls-c', 'from c');
    await publish('ls-team', 'ls-b', 'team two');
    await publish(directRoom('ls-me', 'ls-b'), 'ls-me', 'to b');

    const frame = await me.request({ type: 'rooms' }) as RoomsFrame;
    expect(frame.rooms.map((r) => r.room)).toEqual([directRoom('ls-me', 'ls-b'), 'ls-team', withC, 'ls-quiet']);
    expect(await ok('/api/users/ls-me/rooms', {}, 1)).toEqual({ user: 'ls-me', rooms: frame.rooms, next: null });
    let before: string | undefined;
    const pages: unknown[] = [];
    do {
      const framePage = await me.request({ type: 'rooms', limit: 3, ...(before !== undefined && { before }) }) as RoomsFrame;
      const apiPage = await ok<{ rooms: unknown[]; next: string | null }>(`/api/users/ls-me/rooms?limit=3${before === undefined ? '' : `&before=${encodeURIComponent(before)}`}`);
      expect(apiPage).toEqual({ user: 'ls-me', rooms: framePage.rooms, next: framePage.next ?? null });
      pages.push(...apiPage.rooms);
      before = framePage.next;
    } while (before !== undefined);
    expect(pages).toEqual(frame.rooms);
    expect(await ok('/api/users/ls-nobody/rooms')).toEqual({ user: 'ls-nobody', rooms: [], next: null });
  });

  it('opens a direct conversation for two users: the same room as open, both counted everywhere, nobody else let in', async () => {
    const a = await connect(0, 'op-a');
    const bs = [await connect(1, 'op-b'), await connect(2, 'op-b')];
    const opened = await ok<{ room: string }>('/api/users/op-a/open', post({ with: 'op-b' }), 2);
    expect(opened).toEqual({ room: directRoom('op-a', 'op-b'), user: 'op-a', with: 'op-b' });
    const { room } = opened;
    await listening(room, 3);
    await a.request({ type: 'join', room });
    const ack = await a.request({ type: 'send', room, text: 'hi b' }) as AckFrame;
    for (const b of bs) {
      await b.until(() => lastUnread(b, room)?.count === 1, { what: `unread on ${b.label}` });
      expect(lastUnread(b, room)).toMatchObject({ last: { id: ack.id } });
    }
    expect(await ok('/api/users/op-b/open', post({ with: 'op-a' }), 1)).toEqual({ room, user: 'op-b', with: 'op-a' });
    expect(await bs[0]!.request({ type: 'open', with: 'op-a' })).toMatchObject({ type: 'opened', room, with: 'op-a' });
    expect(await ok(`/api/rooms/${room}/membership`)).toEqual({ room, membersOnly: true, members: ['op-a', 'op-b'], count: 2, next: null });
    expect((await ok<{ rooms: unknown[] }>('/api/users/op-b/rooms')).rooms).toEqual([{ room, unread: 1, read: expect.any(String), last: expect.objectContaining({ id: ack.id, text: 'hi b' }), with: 'op-a' }]);
    const mallory = await connect(1, 'op-mallory');
    expect(await mallory.request({ type: 'join', room })).toMatchObject({ type: 'error', code: 'forbidden' });
    expect((await api(`/api/rooms/${room}/membership/op-mallory`, { method: 'PUT' })).status).toBe(403);
  });
});
