import { ChatClient, type AckFrame, type ChatClientOptions, type MessageFrame, type WebSocketLike } from '@chat/client';
import { compareIds } from '@chat/protocol';
import { sleep, uniquePrefix, waitFor } from '@chat/testkit';
import WebSocket from 'ws';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { readyz, startCluster, startGateway, type Cluster, type GatewayProcess } from './helpers/gateways.js';
import { scrape } from './helpers/metrics.js';
import { startTcpProxy, type TcpProxy } from './helpers/tcp-proxy.js';

/*
 * @chat/client on the fallback transport (GET /sse down, POST /sse/send up)
 * against real gateways on one Redis: it chats with WebSocket users on other
 * gateways with every promise it makes on a WebSocket, it falls back by itself
 * when a middlebox stalls WebSockets, and it survives its stream's gateway
 * being killed with nothing lost or repeated.
 */
const webSocket = (url: string) => new WebSocket(url) as unknown as WebSocketLike;

/** A client that records what the application sees; closed after each test. */
const open: ChatClient[] = [];
function client(options: ChatClientOptions) {
  const c = new ChatClient({ storage: null, webSocket, backoffMinMs: 100, backoffMaxMs: 500, ...options });
  open.push(c);
  const messages: MessageFrame[] = [];
  c.on('message', (m) => messages.push(m));
  return { client: c, messages };
}

const sortIds = (ids: string[]) => [...ids].sort(compareIds);
const env = { RATE_LIMIT_PER_SEC: '1000', RATE_LIMIT_BURST: '1000' };
const API_KEY = 'client-sse-test-key';
const api = (gateway: GatewayProcess, method: string, path: string, body?: unknown) => fetch(`${gateway.httpUrl}${path}`, {
  method, headers: { Authorization: `Bearer ${API_KEY}`, 'Content-Type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body),
});

describe('@chat/client over the fallback transport, against real gateways', () => {
  let cluster: Cluster;
  let proxies: TcpProxy[] = [];

  beforeAll(async () => {
    // Heartbeats every 200 ms, so that a client's dead-stream rule can be shortened to a second below.
    cluster = await startCluster(2, inject('redisUrl'), { ...env, API_KEY, SSE_HEARTBEAT_MS: '200' });
    await waitFor(async () => (await Promise.all(cluster.gateways.map(readyz))).every((s) => s === 200), { what: 'gateways ready' });
  });
  afterEach(async () => {
    for (const c of open.splice(0)) c.close();
    await Promise.all(proxies.splice(0).map((p) => p.close()));
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it('an SSE-only client chats with a WebSocket client on another gateway; each keyed send is stored and acknowledged once', async () => {
    const [gw1, gw2] = cluster.gateways as [GatewayProcess, GatewayProcess];
    // The stream's POSTs go through a round-robin proxy over both gateways: the one that takes them relays to the holder.
    const roundRobin = await startTcpProxy([gw2.port, gw1.port]);
    proxies.push(roundRobin);
    const room = uniquePrefix('sse-chat');
    const sse = client({ url: gw1.wsUrl, sseUrl: `${roundRobin.httpUrl}/sse`, user: 'sse-user', transports: ['sse'] });
    const ws = client({ url: gw2.wsUrl, user: 'ws-user' });
    const dms: string[] = [];
    sse.client.on('dm', (m) => dms.push(`${m.from}:${m.text}`));
    const [welcome] = await Promise.all([sse.client.connect(), ws.client.connect()]);
    expect(welcome.session).toMatch(/^[A-Za-z0-9_.:-]{16,128}$/);
    expect([sse.client.transport, ws.client.transport]).toEqual(['sse', 'websocket']);
    await ws.client.join(room);
    const joined = await sse.client.join(room);
    expect(joined.members.sort()).toEqual(['sse-user', 'ws-user']);

    // Twenty at once from the stream (batched into few POSTs), ten from the socket meanwhile.
    const keys = Array.from({ length: 20 }, (_, i) => `${room}-k${i}`);
    const fromSse = Promise.all(keys.map((key, i) => sse.client.send(room, `sse ${i}`, { key })));
    const fromWs = Promise.all(Array.from({ length: 10 }, (_, i) => ws.client.send(room, `ws ${i}`)));
    const [sseAcks, wsAcks] = await Promise.all([fromSse, fromWs]);
    // The same key again (an application-level retry): the same message, not a new one.
    const again = await sse.client.send(room, 'sse 5', { key: keys[5] });
    expect(again.id).toBe(sseAcks[5]!.id);
    const expected = sortIds([...sseAcks, ...wsAcks].map((a: AckFrame) => a.id));
    expect(new Set(expected).size).toBe(30);
    await waitFor(() => sse.messages.length >= 30 && ws.messages.length >= 30, { what: '30 messages on both sides' });
    await sleep(200); // a duplicate would show now
    expect(sse.messages.map((m) => m.id)).toEqual(expected);
    expect(ws.messages.map((m) => m.id)).toEqual(expected);
    expect(sse.messages.filter((m) => m.user === 'sse-user').map((m) => m.text)).toEqual(keys.map((_, i) => `sse ${i}`));

    // A direct message reaches the stream too.
    await ws.client.dm('sse-user', 'psst');
    await waitFor(() => dms.length === 1, { what: 'the dm on the stream' });
    expect(dms).toEqual(['ws-user:psst']);
    // Some POSTs were taken by the gateway that does not hold the stream, and relayed.
    const relayed = await Promise.all(cluster.gateways.map(async (g) => (await scrape(`${g.httpUrl}/metrics`)).get('chat_sse_posts_total{result="relayed"}') ?? 0));
    expect(relayed[cluster.gateways.findIndex((g) => g.nodeId === welcome.node)]).toBe(0);
    expect(relayed.reduce((a, b) => a + b)).toBeGreaterThan(0);
  });

  it('falls back to SSE within welcomeTimeoutMs when a proxy takes the WebSocket upgrade and then stalls it', async () => {
    const [gw1, gw2] = cluster.gateways as [GatewayProcess, GatewayProcess];
    const stalling = await startTcpProxy([gw1.port], { stallWebSockets: true });
    proxies.push(stalling);
    const room = uniquePrefix('sse-fallback');
    const behind = client({ url: stalling.wsUrl, user: 'behind-proxy', welcomeTimeoutMs: 1500 });
    const states: string[] = [];
    behind.client.on('state', (state, detail) => states.push(`${state}${detail.transport ? `:${detail.transport}` : ''}`));
    const started = Date.now();
    const welcome = await behind.client.connect();
    const took = Date.now() - started;
    expect(stalling.stats.stalled).toBe(1); // the WebSocket was tried, opened, and heard nothing
    expect(took).toBeGreaterThanOrEqual(1400);
    expect(took).toBeLessThan(1500 + 2000);
    expect(behind.client.transport).toBe('sse');
    expect(welcome.node).toBe(gw1.nodeId);
    expect(states).toEqual(['connecting', 'connected:sse']);

    const other = client({ url: gw2.wsUrl, user: 'in-the-clear' });
    await other.client.connect();
    await other.client.join(room);
    await behind.client.join(room);
    const ack = await behind.client.send(room, 'through the proxy');
    await other.client.send(room, 'back to you');
    await waitFor(() => behind.messages.length === 2 && other.messages.length === 2, { what: 'both messages on both sides' });
    expect(behind.messages.map((m) => m.text)).toEqual(['through the proxy', 'back to you']);
    expect(other.messages[0]!.id).toBe(ack.id);
  });

  it('keeps a quiet stream on heartbeats, and takes one that goes silent (black-holed) as dead and recovers what it missed', async () => {
    const [gw1, gw2] = cluster.gateways as [GatewayProcess, GatewayProcess];
    const proxy = await startTcpProxy([gw1.port]);
    proxies.push(proxy);
    const room = uniquePrefix('sse-silence');
    // requestTimeoutMs: the black hole swallows the idle keep-alive connection that POSTs went over too, and
    // fetch may take it for the next POST; a POST with no answer in that time is given up and sent again.
    const quiet = client({ url: proxy.wsUrl, user: 'quiet', transports: ['sse'], streamSilenceMs: 1000, requestTimeoutMs: 2000 });
    const states: string[] = [];
    quiet.client.on('state', (state, detail) => states.push(`${state}:${detail.code ?? ''}`));
    const talker = client({ url: gw2.wsUrl, user: 'talker' });
    await Promise.all([quiet.client.connect(), talker.client.connect()]);
    await quiet.client.join(room);
    await talker.client.join(room);
    await sleep(2500); // nothing but heartbeats for 2.5 silence windows
    expect(states).toEqual(['connecting:', 'connected:']);

    proxy.freeze(); // no FIN, no RST: only the silence tells
    const frozenAt = Date.now();
    const missed = [await talker.client.send(room, 'while frozen 1'), await talker.client.send(room, 'while frozen 2')];
    await waitFor(() => states.includes('reconnecting:1006'), { what: 'the silence noticed' });
    expect(Date.now() - frozenAt).toBeLessThan(1000 + 1500);
    await waitFor(() => quiet.messages.length === 2, { what: 'what it missed' });
    expect(quiet.messages.map((m) => m.id)).toEqual(missed.map((a) => a.id));
  });

  it('follows the application\'s backend: a server-side join and leave, then a disconnect (4000) that it does not retry', async () => {
    const [gw1, gw2] = cluster.gateways as [GatewayProcess, GatewayProcess];
    const room = uniquePrefix('sse-api');
    const user = uniquePrefix('sse-api-user');
    const sse = client({ url: gw1.wsUrl, user, transports: ['sse'] });
    const events: string[] = [];
    sse.client.on('joined', (frame, info) => events.push(`joined:${frame.room === room}:${info.byServer}`));
    sse.client.on('left', (frame) => events.push(`left:${frame.room === room}:${'ref' in frame}`));
    sse.client.on('state', (state, detail) => events.push(`${state}:${detail.code ?? ''}`));
    await sse.client.connect();
    // 409 until some node has the user's channel: a gateway that finds Redis briefly down (a probe late on a
    // loaded machine) welcomes at once and subscribes the channel once Redis is back (UserRegistry.add).
    await waitFor(async () => (await api(gw2, 'PUT', `/api/rooms/${room}/members/${user}`)).status === 200, { what: 'the server-side join accepted' });
    await waitFor(() => events.includes('joined:true:true'), { what: 'the server-side join' });
    expect(sse.client.rooms).toEqual([room]);
    expect((await api(gw2, 'DELETE', `/api/rooms/${room}/members/${user}`)).status).toBe(200);
    await waitFor(() => events.includes('left:true:false'), { what: 'the server-side leave' });
    expect((await api(gw2, 'POST', `/api/users/${user}/disconnect`, { reason: 'bye from the backend' })).status).toBe(200);
    await waitFor(() => sse.client.state === 'offline', { what: 'offline' }).catch((err: Error) => {
      throw new Error(`${err.message}; events: ${events.join(' ')}`);
    });
    await sleep(1000);
    // Before its first `connected` the client may have been refused a stream and retried (a gateway answers 503
    // while it cannot vouch for token revocations: a refresh late on a loaded machine); from there, exactly this.
    const connected = events.indexOf('connected:');
    expect(events.slice(0, connected).every((e) => e.startsWith('connecting') || e.startsWith('reconnecting'))).toBe(true);
    expect(events.slice(connected)).toEqual(['connected:', 'joined:true:true', 'left:true:false', 'offline:4000']);
    expect(sse.client.transport).toBeUndefined();
    await expect(sse.client.send(room, 'after')).rejects.toMatchObject({ code: 'disconnected' });
  });
});

describe('@chat/client on SSE when its stream\'s gateway is killed', () => {
  let victim: GatewayProcess;
  let survivor: GatewayProcess;
  const prefix = uniquePrefix('sse-kill');

  beforeAll(async () => {
    [victim, survivor] = await Promise.all([
      startGateway({ ...env, REDIS_URL: inject('redisUrl'), REDIS_PREFIX: prefix, NODE_ID: 'victim', PRESENCE_TTL_MS: '2000' }),
      startGateway({ ...env, REDIS_URL: inject('redisUrl'), REDIS_PREFIX: prefix, NODE_ID: 'survivor', PRESENCE_TTL_MS: '2000' }),
    ]);
    await waitFor(async () => (await readyz(victim)) === 200 && (await readyz(survivor)) === 200, { what: 'gateways ready' });
  });
  afterAll(async () => {
    for (const c of open.splice(0)) c.close();
    await Promise.all([victim, survivor].map((g) => g?.stop()));
  });

  it('recovers on the other gateway (SIGKILL): every message once and in order, every send acknowledged once', async () => {
    const room = uniquePrefix('sse-kill-room');
    // Its URL list names both gateways: the first connection goes to the first, a reconnect to another.
    const reader = client({ url: [victim.wsUrl, survivor.wsUrl], user: 'sse-reader', transports: ['sse'] });
    const writer = client({ url: survivor.wsUrl, user: 'ws-writer' });
    const nodes: string[] = [];
    reader.client.on('state', (state, detail) => { if (state === 'connected') nodes.push(`${detail.node}:${detail.transport}`); });
    await Promise.all([reader.client.connect(), writer.client.connect()]);
    await writer.client.join(room);
    await reader.client.join(room);

    // Both keep sending through the kill: the writer one at a time, the reader without waiting for acks.
    let running = true;
    const writerAcks: AckFrame[] = [];
    const writing = (async () => {
      for (let i = 0; running; i++) {
        writerAcks.push(await writer.client.send(room, `w${i}`));
        await sleep(15);
      }
    })();
    const readerSends: Array<Promise<AckFrame>> = [];
    const reading = (async () => {
      for (let i = 0; running; i++) {
        readerSends.push(reader.client.send(room, `r${i}`, { key: `${room}-r${i}` }));
        await sleep(40);
      }
    })();
    await waitFor(() => reader.messages.length >= 30, { what: 'traffic before the kill' });
    await victim.kill();
    await waitFor(() => nodes.length === 2, { what: 'the reader connected again', timeoutMs: 20_000 });
    await waitFor(() => reader.messages.length >= writerAcks.length + 20, { what: 'traffic after the kill', timeoutMs: 20_000 });
    running = false;
    await Promise.all([writing, reading]);
    const readerAcks = await Promise.all(readerSends);

    expect(nodes).toEqual(['victim:sse', 'survivor:sse']);
    const expected = sortIds([...writerAcks, ...readerAcks].map((a) => a.id));
    expect(new Set(expected).size).toBe(expected.length); // no send was stored twice
    await waitFor(() => reader.messages.length >= expected.length && writer.messages.length >= expected.length, { what: 'every message on both sides', timeoutMs: 20_000 });
    await sleep(300);
    expect(reader.messages.map((m) => m.id)).toEqual(expected);
    expect(writer.messages.map((m) => m.id)).toEqual(expected);
    // Each of the reader's sends is there once, in the order it made them.
    expect(writer.messages.filter((m) => m.user === 'sse-reader').map((m) => m.text)).toEqual(readerSends.map((_, i) => `r${i}`));
  }, 60_000);
});
