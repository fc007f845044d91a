import net from 'node:net';
import { compareIds, type AckFrame } from '@chat/protocol';
import { SseTestClient, TestClient, postJson, sleep, startRedisCluster, startRedisServer, waitFor, type RedisClusterHandle, type RedisServer } from '@chat/testkit';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { readyz, startCluster, startGateway, type Cluster, type GatewayProcess } from './helpers/gateways.js';
import { scrape } from './helpers/metrics.js';

/*
 * The fallback transport (PROTOCOL.md, "Fallback transport") against three
 * gateways with no load balancer in front: a stream on one, its POSTs to any.
 */
describe('event streams with POSTs to any of three gateways', () => {
  let cluster: Cluster;
  let urls: string[];
  const clients: Array<TestClient | SseTestClient> = [];
  const stream = async (gateway: number, user: string, postTo = urls) => {
    const client = await SseTestClient.open(urls[gateway]!, user, { postTo });
    clients.push(client);
    return client;
  };
  const socket = async (gateway: number, user: string) => {
    const client = await TestClient.connect(cluster.gateways[gateway]!.wsUrl, user);
    clients.push(client);
    return client;
  };

  beforeAll(async () => {
    cluster = await startCluster(3, inject('redisUrl'), { SSE_HEARTBEAT_MS: '300', MAX_FRAME_BYTES: '4096', ALLOWED_ORIGINS: 'https://app.example' });
    urls = cluster.gateways.map((g) => g.httpUrl);
    await waitFor(async () => (await Promise.all(cluster.gateways.map(readyz))).every((s) => s === 200), { what: 'all ready' });
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
  });
  afterAll(async () => {
    await cluster.stop();
  });

  it('opens with welcome carrying an unguessable session, and answers a missing identity 401 with a body', async () => {
    const [a, b] = [await stream(0, 'ann'), await stream(0, 'ann')];
    for (const c of [a, b]) expect(c.session).toMatch(/^[A-Za-z0-9_.:-]{16,128}$/);
    expect(a.session).not.toBe(b.session);
    expect(a.frames[0]).toMatchObject({ type: 'welcome', user: 'ann', node: 'gw-1' });
    const refused = await fetch(`${urls[0]}/sse`);
    expect(refused.status).toBe(401);
    expect(await refused.json()).toMatchObject({ code: expect.any(String), message: expect.any(String) });
  });

  it('handles the frames of POSTs to every gateway on the one stream, in order, and chats with a WebSocket user', async () => {
    const sse = await stream(0, 'sam');
    const ws = await socket(1, 'wes');
    await ws.request({ type: 'join', room: 'mixed' });
    expect(await sse.request({ type: 'join', room: 'mixed' })).toMatchObject({ type: 'joined', room: 'mixed' });
    const acks: AckFrame[] = [];
    for (let i = 0; i < 9; i++) acks.push(await sse.request({ type: 'send', room: 'mixed', text: `sse ${i}`, key: `k${i}` }) as AckFrame);
    // The ack of a POST's frame may come on the stream before the POST's own answer.
    await waitFor(() => sse.answers.length === 10, { what: 'every POST answered' });
    expect(sse.answers.map((a) => a.status)).toEqual(Array(10).fill(202));
    await ws.request({ type: 'send', room: 'mixed', text: 'from the socket' });
    await sse.waitFor((f) => f.type === 'message' && f.text === 'from the socket');
    await ws.until(() => ws.messages('mixed').length === 10, { what: 'ten messages' });
    const ids = acks.map((a) => a.id);
    expect(ws.messages('mixed').slice(0, 9).map((m) => m.id)).toEqual(ids);
    expect(sse.messages('mixed').map((m) => m.id)).toEqual(ws.messages('mixed').map((m) => m.id));
    expect([...ids].sort(compareIds)).toEqual(ids);
  });

  it('handles the frames of one POST in order, answers a bad element on the stream and the others as usual', async () => {
    const sse = await stream(0, 'ola');
    await sse.request({ type: 'join', room: 'order' });
    const frames = [
      ...Array.from({ length: 20 }, (_, i) => ({ type: 'send', room: 'order', text: `n${i}`, ref: `s${i}` })),
      { type: 'nonsense', ref: 'bad' },
      7,
      { type: 'ping', ref: 'last' },
    ];
    expect(await sse.post(frames, urls[2])).toEqual({ status: 202, body: { accepted: 23 } });
    await sse.waitFor((f) => f.type === 'pong' && f.ref === 'last');
    expect(await sse.waitFor((f) => f.type === 'error' && f.ref === 'bad')).toMatchObject({ code: 'bad_request' });
    await sse.until(() => sse.ofType('ack').length === 20, { what: 'twenty acks' });
    const ackIds = Array.from({ length: 20 }, (_, i) => sse.ofType('ack').find((a) => a.ref === `s${i}`)!.id);
    expect([...ackIds].sort(compareIds)).toEqual(ackIds); // stored in the order of the array
    expect(sse.ofType('error').filter((e) => e.ref === undefined)).toHaveLength(1); // the 7
  });

  it('handles a join and a send behind it in one POST as a WebSocket would: the send finds the room joined', async () => {
    const sse = await stream(0, 'jo');
    const batch = [{ type: 'join', room: 'together', ref: 'j' }, { type: 'send', room: 'together', text: 'right behind', ref: 's' }];
    expect(await sse.post(batch, urls[1])).toMatchObject({ status: 202 });
    expect(await sse.post([{ type: 'send', room: 'together', text: 'next POST', ref: 't' }], urls[2])).toMatchObject({ status: 202 });
    const [first, second] = [await sse.waitFor((f) => 'ref' in f && f.ref === 's'), await sse.waitFor((f) => 'ref' in f && f.ref === 't')];
    expect(first).toMatchObject({ type: 'ack' });
    expect(second).toMatchObject({ type: 'ack' });
    expect(compareIds((first as AckFrame).id, (second as AckFrame).id)).toBeLessThan(0); // one POST after the other: in order
  });

  it('answers every refusal the contract lists, and handles nothing of a refused POST', async () => {
    const sse = await stream(1, 'rex');
    await sse.request({ type: 'join', room: 'refusals' });
    const send = { type: 'send', room: 'refusals', text: 'must not be stored' };
    for (const url of urls) {
      const post = (body: string) => postJson(`${url}/sse/send`, body);
      expect(await post('not json')).toMatchObject({ status: 400, body: { code: 'bad_request' } });
      expect(await post(JSON.stringify({ frames: [send] }))).toMatchObject({ status: 400, body: { code: 'bad_request' } });
      expect(await post(JSON.stringify({ session: sse.session, frames: [] }))).toMatchObject({ status: 400 });
      expect(await post(JSON.stringify({ session: sse.session, frames: send }))).toMatchObject({ status: 400 });
      expect(await post(JSON.stringify({ session: sse.session, frames: Array(101).fill(send) }))).toMatchObject({ status: 400 });
      expect((await post(JSON.stringify({ session: sse.session, frames: [{ ...send, text: 'x'.repeat(300_000) }] }))).status).toBe(413);
      const unknown = await post(JSON.stringify({ session: `${sse.session.slice(0, -4)}AAAA`, frames: [send] }));
      expect(unknown).toMatchObject({ status: 404, body: { code: 'unknown_session' } });
      expect(await post(JSON.stringify({ session: 'no-such-thing', frames: [send] }))).toMatchObject({ status: 404 });
    }
    await sse.request({ type: 'ping' });
    expect(sse.messages('refusals')).toEqual([]);
    expect(sse.ofType('ack')).toEqual([]);
  });

  it('forgets a session once its stream ends: POSTs for it get 404 on every gateway', async () => {
    const sse = await stream(2, 'gil');
    const session = sse.session;
    await sse.close();
    for (const url of urls) {
      await waitFor(async () => (await postJson(`${url}/sse/send`, JSON.stringify({ session, frames: [{ type: 'ping' }] }))).status === 404, { what: `404 from ${url}` });
    }
  });

  it('counts a session as a connection: presence, members, direct messages to every connection of the user', async () => {
    const sse = await stream(0, 'pia');
    const ws = await socket(2, 'pia');
    const other = await socket(1, 'quin');
    await other.request({ type: 'join', room: 'people' });
    await sse.request({ type: 'join', room: 'people' });
    await other.waitFor((f) => f.type === 'presence' && f.user === 'pia' && f.state === 'online');
    expect(await other.request({ type: 'members', room: 'people' })).toMatchObject({ users: ['pia', 'quin'], count: 2 });
    await other.request({ type: 'dm', to: 'pia', text: 'to both of you' });
    for (const c of [sse, ws]) await c.waitFor((f) => f.type === 'dm' && f.text === 'to both of you');
    await sse.close();
    await other.waitFor((f) => f.type === 'presence' && f.user === 'pia' && f.state === 'offline');
  });

  it('writes a comment while no event is due, at least every SSE_HEARTBEAT_MS', async () => {
    const sse = await stream(1, 'hal');
    const before = sse.comments;
    await sleep(1000);
    expect(sse.comments - before).toBeGreaterThanOrEqual(2);
    expect(Date.now() - sse.lastHeardAt).toBeLessThan(600);
  });

  it('answers preflights and carries Access-Control-Allow-Origin for allowed origins only', async () => {
    const allowed = await fetch(`${urls[0]}/sse/send`, { method: 'OPTIONS', headers: { Origin: 'https://app.example', 'Access-Control-Request-Method': 'POST' } });
    expect(allowed.status).toBe(204);
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://app.example');
    expect(allowed.headers.get('access-control-allow-methods')).toContain('POST');
    const other = await fetch(`${urls[0]}/sse/send`, { method: 'OPTIONS', headers: { Origin: 'https://evil.example' } });
    expect(other.status).toBe(403);
    const sse = await stream(0, 'cora');
    const answer = await fetch(`${urls[1]}/sse/send`, {
      method: 'POST', headers: { Origin: 'https://app.example', 'Content-Type': 'application/json' },
      body: JSON.stringify({ session: sse.session, frames: [{ type: 'ping' }] }),
    });
    expect(answer.status).toBe(202);
    expect(answer.headers.get('access-control-allow-origin')).toBe('https://app.example');
    const stranger = await fetch(`${urls[0]}/sse?user=eve`, { headers: { Origin: 'https://evil.example' } });
    expect(stranger.status).toBe(403);
  });

  it('keeps serving a good client while 1,000 requests for streams stay half-sent', async () => {
    const port = Number(new URL(urls[0]!).port);
    const halfOpen = await Promise.all(Array.from({ length: 1000 }, () => new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.write('GET /sse?user=slow HTTP/1.1\r\nHost: gateway\r\n'); // never finished
        resolve(s);
      });
      s.on('error', reject);
    })));
    try {
      const good = await stream(0, 'good');
      await good.request({ type: 'join', room: 'busy-door' });
      expect(await good.request({ type: 'send', room: 'busy-door', text: 'still served' })).toMatchObject({ type: 'ack' });
    } finally {
      for (const s of halfOpen) s.destroy();
    }
  });
});

describe('event streams when a gateway or Redis fails', () => {
  let redis: RedisServer;
  let gateways: GatewayProcess[];
  const env = () => ({ REDIS_URL: redis.url, REDIS_PREFIX: 'ssefail:', BROKER_TIMEOUT_MS: '800', SSE_HEARTBEAT_MS: '500', DRAIN_SPREAD_MS: '0', SHUTDOWN_GRACE_MS: '0' });

  beforeAll(async () => {
    redis = await startRedisServer();
    gateways = await Promise.all(['f1', 'f2', 'f3'].map((id) => startGateway({ ...env(), NODE_ID: id })));
    await waitFor(async () => (await Promise.all(gateways.map(readyz))).every((s) => s === 200), { what: 'all ready' });
  });
  afterAll(async () => {
    await Promise.all(gateways.map((g) => g.stop()));
    await redis.cleanup();
  });

  it('closes a stream that is never read with 1013 once its buffer fills, after a gap-free run of the room', async () => {
    const gateway = await startGateway({ ...env(), NODE_ID: 'slow', SEND_BUFFER_BYTES: '65536', RATE_LIMIT_PER_SEC: '100000', RATE_LIMIT_BURST: '100000' });
    const metric = async (name: string) => (await scrape(`${gateway.httpUrl}/metrics`)).get(name) ?? 0;
    try {
      const writer = await TestClient.connect(gateway.wsUrl, 'flood');
      const good = await SseTestClient.open(gateway.httpUrl, 'good');
      const slow = await SseTestClient.open(gateway.httpUrl, 'sloth');
      for (const c of [writer, good, slow]) await c.request({ type: 'join', room: 'flood' });
      slow.pause();
      let sent = 0;
      while ((await metric('chat_backpressure_closes_total')) === 0 && sent < 4000) {
        for (let k = 0; k < 20; k++) writer.send({ type: 'send', room: 'flood', text: `${++sent} ${'x'.repeat(4000)}` });
        await sleep(20);
      }
      expect(await metric('chat_backpressure_closes_total')).toBe(1);
      slow.resume();
      expect([1013, 1006]).toContain((await slow.closed).code);
      await good.until(() => good.messages('flood').length === sent, { what: `${sent} messages`, timeoutMs: 20_000 });
      const roomIds = good.messages('flood').map((m) => m.id);
      const ids = slow.messages('flood').map((m) => m.id);
      const start = roomIds.indexOf(ids[0]!);
      expect(ids, 'a contiguous run of the room: nothing dropped from the middle').toEqual(roomIds.slice(start, start + ids.length));
      await Promise.all([writer.close(), good.close()]);
    } finally {
      await gateway.stop();
    }
  }, 40_000);

  it('ends the stream with a close event 1001 on a drain', async () => {
    const extra = await startGateway({ ...env(), NODE_ID: 'drained' });
    const sse = await SseTestClient.open(extra.httpUrl, 'dee');
    const stopping = extra.stop('SIGTERM');
    expect(await sse.closed).toMatchObject({ code: 1001 });
    await stopping;
  });

  it('answers POSTs for a SIGKILLed gateway\'s streams 404 within the broker timeout, and the client resumes elsewhere with nothing lost or repeated', async () => {
    const doomed = await startGateway({ ...env(), NODE_ID: 'doomed' });
    const writer = await TestClient.connect(gateways[0]!.wsUrl, 'writer');
    await writer.request({ type: 'join', room: 'crash' });
    const urls = gateways.map((g) => g.httpUrl);
    const reader = await SseTestClient.open(doomed.httpUrl, 'reader', { postTo: urls });
    await reader.request({ type: 'join', room: 'crash' });
    const acked: string[] = [];
    for (let i = 0; i < 5; i++) acked.push((await writer.request({ type: 'send', room: 'crash', text: `before ${i}` }) as AckFrame).id);
    await reader.until(() => reader.messages('crash').length === 5, { what: 'five messages' });
    const session = reader.session;
    const killed = doomed.kill();
    await reader.closed;
    for (let i = 0; i < 5; i++) acked.push((await writer.request({ type: 'send', room: 'crash', text: `after ${i}` }) as AckFrame).id);
    for (const url of urls) {
      const started = Date.now();
      const answer = await postJson(`${url}/sse/send`, JSON.stringify({ session, frames: [{ type: 'ping' }] }));
      expect(answer.status).toBe(404);
      expect(Date.now() - started).toBeLessThan(800 + 500);
    }
    const since = reader.messages('crash').at(-1)!.id;
    const resumed = await SseTestClient.open(urls[1]!, 'reader', { postTo: urls });
    const joined = await resumed.request({ type: 'join', room: 'crash', since });
    expect(joined).toMatchObject({ type: 'joined', recovered: true });
    const seen = [...reader.messages('crash'), ...resumed.messages('crash')].map((m) => m.id);
    expect(seen).toEqual(acked);
    await Promise.all([writer.close(), resumed.close()]);
    await killed;
  });

  it('answers relayed POSTs 503 within BROKER_TIMEOUT_MS while Redis is down, and 202 once it is back', async () => {
    const sse = await SseTestClient.open(gateways[0]!.httpUrl, 'rhea');
    const body = JSON.stringify({ session: sse.session, frames: [{ type: 'ping', ref: 'p' }] });
    expect((await postJson(`${gateways[1]!.httpUrl}/sse/send`, body)).status).toBe(202);
    await redis.kill();
    try {
      const started = Date.now();
      const answer = await postJson(`${gateways[1]!.httpUrl}/sse/send`, body);
      expect(answer).toMatchObject({ status: 503, body: { code: 'unavailable' } });
      expect(Date.now() - started).toBeLessThan(800 + 500);
    } finally {
      await redis.start();
    }
    await waitFor(async () => (await postJson(`${gateways[1]!.httpUrl}/sse/send`, body)).status === 202, { what: '202 again', timeoutMs: 10_000 });
    await sse.close();
  });
});

describe('event streams on a Redis Cluster (sharded inbox channels)', () => {
  let cluster: RedisClusterHandle;
  let gateways: GatewayProcess[];

  beforeAll(async () => {
    cluster = await startRedisCluster({ primaries: 3, replicasPerPrimary: 0 });
    gateways = await Promise.all(['c1', 'c2', 'c3'].map((id) => startGateway({ REDIS_URL: '', REDIS_CLUSTER_NODES: cluster.seeds, REDIS_PREFIX: 'ssecl:', NODE_ID: id })));
    await waitFor(async () => (await Promise.all(gateways.map(readyz))).every((s) => s === 200), { what: 'all ready', timeoutMs: 15_000 });
  }, 60_000);
  afterAll(async () => {
    await Promise.all((gateways ?? []).map((g) => g.stop()));
    await cluster?.stop();
  });

  it('relays POSTs from every gateway to the stream, and 404s one that ended', async () => {
    const urls = gateways.map((g) => g.httpUrl);
    const streams = await Promise.all(urls.map((url, i) => SseTestClient.open(url, `cl${i}`, { postTo: urls })));
    for (const s of streams) await s.request({ type: 'join', room: 'sharded' });
    for (const s of streams) await s.request({ type: 'send', room: 'sharded', text: `from ${s.label}` });
    for (const s of streams) await s.until(() => s.messages('sharded').length === 3, { what: 'three messages' });
    // A relayed POST's answer comes back after the holder already wrote the reply on the stream.
    await waitFor(() => streams.every((s) => s.answers.length === 2), { what: 'every POST answered' });
    expect(streams.flatMap((s) => s.answers.map((a) => a.status))).toEqual(Array(6).fill(202));
    const ended = streams[0]!.session;
    await streams[0]!.close();
    for (const url of urls) {
      await waitFor(async () => (await postJson(`${url}/sse/send`, JSON.stringify({ session: ended, frames: [{ type: 'ping' }] }))).status === 404, { what: `404 from ${url}` });
    }
    await Promise.all(streams.map((s) => s.close()));
  });
});
