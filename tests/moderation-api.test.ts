import { readFileSync } from 'node:fs';
import SwaggerParser from '@apidevtools/swagger-parser';
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { AckFrame, ErrorFrame, HistoryFrame, ServerFrame } from '@chat/protocol';
import { TestClient, startRedisServer, type RedisServer } from '@chat/testkit';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parse } from 'yaml';
import { startCluster, startGateway, type GatewayProcess } from './helpers/gateways.js';

const KEY = 'moderation-api-key-0123456789';
const SPEC_PATH = new URL('../docs/openapi.yaml', import.meta.url);
const auth = { Authorization: `Bearer ${KEY}` };

type Operation = { tags?: string[]; responses: Record<string, { content?: { 'application/json': { schema: object } } }> };
type Spec = { paths: Record<string, Record<string, Operation>> };

interface Case {
  path: string;
  method: 'get' | 'post' | 'put' | 'delete';
  status: number;
  send(): Promise<Response>;
}

describe('the server API for moderation', () => {
  let cluster: Awaited<ReturnType<typeof startCluster>>;
  let throttled: GatewayProcess;
  let redisless: GatewayProcess;
  let ownRedis: RedisServer;
  const clients: TestClient[] = [];
  const connect = async (gateway: number, user: string): Promise<TestClient> => {
    const client = await TestClient.connect(cluster.gateways[gateway]!.wsUrl, user);
    clients.push(client);
    return client;
  };
  const api = (path: string, init: RequestInit = {}, gateway = 0) =>
    fetch(`${cluster.gateways[gateway]!.httpUrl}${path}`, { ...init, headers: { ...auth, ...init.headers } });
  const ok = async <T = Record<string, unknown>>(path: string, init: RequestInit = {}, gateway = 0): Promise<T> => {
    const response = await api(path, init, gateway);
    const body = await response.json() as T;
    expect(response.status, `${init.method ?? 'GET'} ${path}: ${JSON.stringify(body)}`).toBe(200);
    return body;
  };
  const publish = async (room: string, user: string, text: string): Promise<string> => {
    const response = await api(`/api/rooms/${room}/messages`, { method: 'POST', body: JSON.stringify({ user, text }) });
    expect(response.status).toBe(201);
    return ((await response.json()) as { id: string }).id;
  };

  beforeAll(async () => {
    cluster = await startCluster(3, inject('redisUrl'), { API_KEY: KEY });
    throttled = await startGateway({ REDIS_URL: inject('redisUrl'), REDIS_PREFIX: cluster.prefix, API_KEY: KEY, API_RATE_LIMIT_PER_SEC: '0.001', API_RATE_LIMIT_BURST: '1' });
    ownRedis = await startRedisServer();
    redisless = await startGateway({ REDIS_URL: ownRedis.url, API_KEY: KEY, BROKER_TIMEOUT_MS: '300' });
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.terminate()));
    await Promise.all([cluster?.stop(), throttled?.stop(), redisless?.stop()]);
    await ownRedis?.cleanup();
  });

  it('answers every documented route and status as documented', async () => {
    const spec = (await SwaggerParser.dereference(parse(readFileSync(SPEC_PATH, 'utf8')))) as unknown as Spec;
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    const target = await publish('md-doc', 'md-ann', 'delete me');
    const deleted = await publish('md-doc', 'md-ann', 'deleted already');
    await ok(`/api/rooms/md-doc/messages/${deleted}`, { method: 'DELETE' });
    const on = (gateway: GatewayProcess, path: string, init: RequestInit = {}) => () =>
      fetch(`${gateway.httpUrl}${path}`, { ...init, headers: { ...auth, ...init.headers } });
    const noKey = (path: string, init: RequestInit) => () => fetch(`${cluster.gateways[1]!.httpUrl}${path}`, { ...init, headers: { Authorization: 'Bearer wrong' } });
    const reason = { reason: 'documented' };
    const routes: Array<[path: string, method: Case['method'], concrete: string, body?: object]> = [
      ['/api/rooms/{room}/moderation', 'get', '/api/rooms/md-doc/moderation'],
      ['/api/rooms/{room}/moderators/{user}', 'put', '/api/rooms/md-doc/moderators/md-mod'],
      ['/api/rooms/{room}/moderators/{user}', 'delete', '/api/rooms/md-doc/moderators/md-mod'],
      ['/api/rooms/{room}/bans/{user}', 'put', '/api/rooms/md-doc/bans/md-bad', reason],
      ['/api/rooms/{room}/bans/{user}', 'delete', '/api/rooms/md-doc/bans/md-bad'],
      ['/api/rooms/{room}/mutes/{user}', 'put', '/api/rooms/md-doc/mutes/md-loud', reason],
      ['/api/rooms/{room}/mutes/{user}', 'delete', '/api/rooms/md-doc/mutes/md-loud'],
      ['/api/rooms/{room}/messages/{id}', 'delete', `/api/rooms/md-doc/messages/${target}?as=md-mod`],
      ['/api/users/{user}/erase', 'post', '/api/users/md-nobody/erase', { room: 'md-doc' }],
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
      refusal('/api/rooms/{room}/moderation', 'get', 400, '/api/rooms/no!pe/moderation'),
      refusal('/api/rooms/{room}/moderators/{user}', 'put', 400, '/api/rooms/md-doc/moderators/no!pe'),
      refusal('/api/rooms/{room}/moderators/{user}', 'delete', 400, '/api/rooms/no!pe/moderators/md-mod'),
      refusal('/api/rooms/{room}/bans/{user}', 'put', 400, '/api/rooms/md-doc/bans/md-bad', '{"reason":7}'),
      refusal('/api/rooms/{room}/bans/{user}', 'delete', 400, '/api/rooms/md-doc/bans/no!pe'),
      refusal('/api/rooms/{room}/mutes/{user}', 'put', 400, '/api/rooms/md-doc/mutes/md-loud', 'not json'),
      refusal('/api/rooms/{room}/mutes/{user}', 'delete', 400, '/api/rooms/no!pe/mutes/md-loud'),
      refusal('/api/rooms/{room}/messages/{id}', 'delete', 400, '/api/rooms/md-doc/messages/yesterday'),
      refusal('/api/rooms/{room}/messages/{id}', 'delete', 404, '/api/rooms/md-doc/messages/1-0'),
      refusal('/api/rooms/{room}/messages/{id}', 'delete', 410, `/api/rooms/md-doc/messages/${deleted}`),
      refusal('/api/users/{user}/erase', 'post', 400, '/api/users/md-ann/erase', '{"room":"no!pe"}'),
    );

    const documented = Object.entries(spec.paths).flatMap(([path, methods]) => Object.entries(methods)
      .filter(([m, op]) => m !== 'parameters' && op.tags?.includes('moderation') === true)
      .flatMap(([method, op]) => Object.keys(op.responses).map((status) => `${method} ${path} ${status}`)));
    expect(cases.map((c) => `${c.method} ${c.path} ${c.status}`).sort()).toEqual([...new Set(documented)].sort());

    await ownRedis.kill(); // the redisless gateway's Redis goes away: every route must say 503
    for (const c of cases) {
      const response = await c.send();
      const what = `${c.method.toUpperCase()} ${c.path} -> ${c.status}`;
      const body: unknown = await response.json();
      expect(response.status, `${what}: ${JSON.stringify(body)}`).toBe(c.status);
      const validate = ajv.compile(spec.paths[c.path]![c.method]!.responses[String(c.status)]!.content!['application/json'].schema);
      expect(validate(body), `${what}: ${JSON.stringify(body)} ${ajv.errorsText(validate.errors)}`).toBe(true);
    }
  });

  it('bans: the user leaves the room on every gateway at once and is refused join and send with the reason, until lifted', async () => {
    const room = 'md-ban';
    const devices = [await connect(0, 'md-spam'), await connect(2, 'md-spam')];
    for (const d of devices) await d.request({ type: 'join', room });
    await ok(`/api/rooms/${room}/bans/md-spam`, { method: 'PUT', body: JSON.stringify({ reason: 'spam links' }) }, 1);
    for (const d of devices) await d.until(() => d.frames.some((f) => f.type === 'left' && f.room === room), { what: `left on ${d.label}` });
    const refused = await devices[0]!.request({ type: 'join', room }) as ErrorFrame;
    expect(refused).toMatchObject({ type: 'error', code: 'banned', reason: 'spam links' });
    expect(await devices[1]!.request({ type: 'send', room, text: 'buy now' })).toMatchObject({ code: 'not_joined' });
    const list = await ok<{ restricted: unknown[] }>(`/api/rooms/${room}/moderation`);
    expect(list.restricted).toEqual([{ user: 'md-spam', kind: 'ban', reason: 'spam links' }]);
    expect(await ok(`/api/rooms/${room}/bans/md-spam`, { method: 'DELETE' })).toMatchObject({ lifted: true });
    expect((await devices[0]!.request({ type: 'join', room })).type).toBe('joined');
  });

  it('mutes: the user reads on but may not post, edit or react, with the reason', async () => {
    const room = 'md-mute';
    const [loud, other] = [await connect(1, 'md-loud'), await connect(2, 'md-calm')];
    for (const c of [loud, other]) await c.request({ type: 'join', room });
    const own = await loud.request({ type: 'send', room, text: 'before' }) as AckFrame;
    await ok(`/api/rooms/${room}/mutes/md-loud`, { method: 'PUT', body: JSON.stringify({ reason: 'cool off' }) });
    for (const frame of [{ type: 'send', room, text: 'LOUD' }, { type: 'edit', room, target: own.id, text: 'LOUDER' }, { type: 'react', room, target: own.id, reaction: 'fire' }]) {
      expect(await loud.request(frame as never)).toMatchObject({ type: 'error', code: 'muted', reason: 'cool off' });
    }
    const said = await other.request({ type: 'send', room, text: 'you can still read this' }) as AckFrame;
    await loud.until(() => loud.frames.some((f) => f.type === 'message' && f.id === said.id), { what: 'the muted user reads on' });
    expect((await loud.request({ type: 'delete', room, target: own.id })).type).toBe('ack');
  });

  it('lets a moderator named through the API, and the API itself, delete others\' messages', async () => {
    const room = 'md-del';
    const [author, mod] = [await connect(0, 'md-author'), await connect(1, 'md-warden')];
    for (const c of [author, mod]) await c.request({ type: 'join', room });
    const first = await author.request({ type: 'send', room, text: 'rude' }) as AckFrame;
    const second = await author.request({ type: 'send', room, text: 'ruder' }) as AckFrame;
    expect(await mod.request({ type: 'delete', room, target: first.id })).toMatchObject({ code: 'forbidden' });
    await ok(`/api/rooms/${room}/moderators/md-warden`, { method: 'PUT' });
    expect((await mod.request({ type: 'delete', room, target: first.id })).type).toBe('ack');
    const answer = await ok<{ id: string }>(`/api/rooms/${room}/messages/${second.id}?as=md-warden`, { method: 'DELETE' });
    await author.until(() => author.frames.some((f) => f.type === 'delete' && f.id === answer.id), { what: 'the API delete, live' });
    expect(author.frames.find((f): f is Extract<ServerFrame, { type: 'delete' }> => f.type === 'delete' && f.id === answer.id)).toMatchObject({ target: second.id, user: 'md-warden' });
    const page = await author.request({ type: 'history', room }) as HistoryFrame;
    expect(page.messages.map((m) => [m.text, m.deleted])).toEqual([['', true], ['', true]]);
  });

  it('erases a user\'s messages in every room, live for members and in every page', async () => {
    const [gone, stays] = [await connect(0, 'md-erased'), await connect(1, 'md-stays')];
    for (const room of ['md-er1', 'md-er2']) {
      for (const c of [gone, stays]) await c.request({ type: 'join', room });
      await gone.request({ type: 'send', room, text: `private in ${room}` });
      await stays.request({ type: 'send', room, text: `public in ${room}` });
    }
    const answer = await ok<{ erased: { stream: number } }>('/api/users/md-erased/erase', { method: 'POST' }, 2);
    expect(answer.erased.stream).toBe(2);
    for (const room of ['md-er1', 'md-er2']) {
      await stays.until(() => stays.frames.some((f) => f.type === 'delete' && f.room === room), { what: `the delete in ${room}` });
      const page = await stays.request({ type: 'history', room }) as HistoryFrame;
      expect(page.messages.map((m) => [m.user, m.text])).toEqual([['md-erased', ''], ['md-stays', `public in ${room}`]]);
      const viaApi = await ok<{ messages: Array<{ text: string }> }>(`/api/rooms/${room}/messages`);
      expect(JSON.stringify(viaApi)).not.toContain('private');
    }
  });
});
