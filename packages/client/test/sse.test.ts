import type { ServerFrame } from '@chat/protocol';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ChatClient, streamUrlOf, type ChatClientOptions, type StateDetail } from '../src/index.js';
import { EventStreamParser } from '../src/event-stream.js';
import { FakeGateway } from './fake-fetch.js';
import { FakeSocket, message } from './fake-socket.js';

/** A client on the fallback transport only, against a fake gateway; `seen` holds the ids of the messages it delivered. */
function sseClient(options: Partial<ChatClientOptions> = {}) {
  const gateway = new FakeGateway();
  const client = new ChatClient({
    url: 'ws://fake/ws', user: 'alice', transports: ['sse'], backoffMinMs: 1, backoffMaxMs: 1, fetch: gateway.fetch, storage: null, ...options,
  });
  const seen: string[] = [];
  client.on('message', (m) => seen.push(m.id));
  const states: string[] = [];
  client.on('state', (state, detail) => states.push(`${state}${detail.transport ? `:${detail.transport}` : ''}${detail.code ? `:${detail.code}` : ''}`));
  return { gateway, client, seen, states };
}

/** Connects `fake` over a stream and joins `room` (each POST answered 202, the join's answer on the stream). */
async function connectedIn(fake: ReturnType<typeof sseClient>, room = 'r', session = 'inbox.secret-1') {
  const connecting = fake.client.connect();
  const stream = await fake.gateway.streamCount(1);
  stream.welcome('alice', session);
  await connecting;
  const joining = fake.client.join(room);
  const post = await fake.gateway.nextPost();
  post.answer();
  const join = post.body.frames[0]!;
  stream.push({ type: 'joined', room, ref: join.ref!, count: 1, members: ['alice'], history: [] });
  await joining;
  return stream;
}

describe('EventStreamParser', () => {
  it('reads events split anywhere, with CRLF, CR or LF, comments, BOM and multi-line data', () => {
    const events: string[] = [];
    const parser = new EventStreamParser((data) => events.push(data));
    const text = '\uFEFF:hello\r\n\r\ndata: one\r\n\r\ndata:two\rdata:  three\r\r: beat\n\nid: 7\nevent: x\ndata: {"a":1}\n\n';
    for (const chunk of text.split('')) parser.push(chunk); // one character at a time: a CR then its LF in the next chunk
    expect(events).toEqual(['one', 'two\n three', '{"a":1}']);
    const whole: string[] = [];
    new EventStreamParser((data) => whole.push(data)).push(text);
    expect(whole).toEqual(events);
  });
});

describe('ChatClient over the fallback transport (fake gateway)', () => {
  afterEach(() => vi.useRealTimers());

  it('derives the stream URL from the WebSocket URL and says which transport it uses', async () => {
    expect(streamUrlOf('wss://chat.example.com/ws')).toBe('https://chat.example.com/sse');
    expect(streamUrlOf('ws://127.0.0.1:8080/chat/ws?x=1')).toBe('http://127.0.0.1:8080/chat/sse?x=1');
    expect(streamUrlOf('ws://h/')).toBe('http://h/sse');
    const fake = sseClient();
    const details: StateDetail[] = [];
    fake.client.on('state', (_s, detail) => details.push(detail));
    await connectedIn(fake);
    expect(fake.gateway.stream().url).toBe('http://fake/sse?user=alice');
    expect(fake.gateway.posts[0]!.url).toBe('http://fake/sse/send');
    expect(fake.gateway.posts[0]!.body.session).toBe('inbox.secret-1');
    expect(fake.client.transport).toBe('sse');
    expect(details.at(-1)).toMatchObject({ node: 'fake', transport: 'sse' });
    fake.client.close();
    expect(fake.gateway.stream().aborted).toBe(true);
  });

  it('sends a token as a bearer header, never in the stream URL', async () => {
    const fake = sseClient({ user: undefined, token: 'jwt.x.y' });
    fake.client.connect().catch(() => {});
    const stream = await fake.gateway.streamCount(1);
    expect(stream.url).toBe('http://fake/sse');
    expect(stream.headers).toMatchObject({ Authorization: 'Bearer jwt.x.y' });
    fake.client.close();
  });

  it('keeps one POST in flight and batches what is sent meanwhile, at most 100 frames a POST, in order', async () => {
    const fake = sseClient({ queueLimit: 1000 });
    await connectedIn(fake);
    const sends = [fake.client.send('r', 'm0')];
    const first = await fake.gateway.nextPost();
    expect(first.body.frames.map((f) => f.type === 'send' && f.text)).toEqual(['m0']);
    for (let i = 1; i <= 150; i++) {
      sends.push(fake.client.send('r', `m${i}`));
      if (i % 10 === 0) await new Promise((r) => setTimeout(r, 1)); // over several turns of the event loop
    }
    await new Promise((r) => setTimeout(r, 20));
    expect(fake.gateway.open()).toHaveLength(1); // the rest waits for the answer
    first.answer();
    const second = await fake.gateway.nextPost();
    expect(second.body.frames).toHaveLength(100);
    second.answer();
    const third = await fake.gateway.nextPost();
    expect(third.body.frames).toHaveLength(50);
    third.answer();
    const texts = fake.gateway.frames().filter((f) => f.type === 'send').map((f) => f.type === 'send' && f.text);
    expect(texts).toEqual(Array.from({ length: 151 }, (_, i) => `m${i}`));
    // Acks come on the stream, matched by ref.
    fake.gateway.stream().push(...fake.gateway.frames().filter((f) => f.type === 'send').map((f, i): ServerFrame => ({ type: 'ack', ref: f.ref!, id: `1-${i}`, ts: 1 })));
    const acks = await Promise.all(sends);
    expect(acks.map((a) => a.id)).toEqual(Array.from({ length: 151 }, (_, i) => `1-${i}`));
    fake.client.close();
  });

  it('sends the same frames again after a 503 or a POST that got no answer, with the same keys, and resolves once', async () => {
    const fake = sseClient();
    await connectedIn(fake);
    const sending = fake.client.send('r', 'hello');
    const refused = await fake.gateway.nextPost();
    refused.answer(503, { code: 'unavailable', message: 'holder unreachable' });
    const lost = await fake.gateway.nextPost();
    expect(lost.body.frames).toEqual(refused.body.frames);
    lost.fail();
    const third = await fake.gateway.nextPost();
    expect(third.body.frames).toEqual(refused.body.frames);
    third.answer();
    const ref = refused.body.frames[0]!.ref!;
    fake.gateway.stream().push({ type: 'ack', ref, id: '4-0', ts: 1 }, { type: 'ack', ref, id: '4-0', ts: 1 });
    await expect(sending).resolves.toMatchObject({ id: '4-0' });
    expect(fake.gateway.streams).toHaveLength(1);
    fake.client.close();
  });

  it('on 404 unknown_session opens a new stream, rejoins with since and resends what had no ack, with the same key', async () => {
    const fake = sseClient();
    const first = await connectedIn(fake);
    first.push(message('1-1'), message('1-2'));
    const sending = fake.client.send('r', 'lost?');
    const post = await fake.gateway.nextPost();
    const key = post.body.frames[0]!.key;
    post.answer(404, { code: 'unknown_session', message: 'gone' });
    first.end(); // a gateway that no longer holds the session has ended its stream (a dead one's breaks)
    const second = await fake.gateway.streamCount(2);
    expect(first.aborted).toBe(true);
    second.welcome('alice', 'inbox.secret-2');
    const rejoin = await fake.gateway.nextPost();
    expect(rejoin.body.session).toBe('inbox.secret-2');
    expect(rejoin.body.frames).toEqual([expect.objectContaining({ type: 'join', room: 'r', since: '1-2' })]);
    rejoin.answer();
    second.push({ type: 'joined', room: 'r', ref: rejoin.body.frames[0]!.ref!, count: 1, members: ['alice'], history: [message('1-3')], recovered: true });
    const resend = await fake.gateway.nextPost();
    expect(resend.body.frames).toEqual([expect.objectContaining({ type: 'send', text: 'lost?', key })]);
    resend.answer();
    second.push({ type: 'ack', ref: resend.body.frames[0]!.ref!, id: '1-4', ts: 1 }, message('1-4', 'lost?'));
    await expect(sending).resolves.toMatchObject({ id: '1-4' });
    expect(fake.seen).toEqual(['1-1', '1-2', '1-3', '1-4']);
    fake.client.close();
  });

  it('answers a request the gateway refused as a whole (413) with an error; a batch that was too large goes again in halves', async () => {
    const fake = sseClient();
    await connectedIn(fake);
    const blocker = fake.client.send('r', 'first');
    const first = await fake.gateway.nextPost();
    const big = [fake.client.send('r', 'a'), fake.client.send('r', 'b')];
    first.answer();
    const pair = await fake.gateway.nextPost();
    expect(pair.body.frames).toHaveLength(2);
    pair.answer(413, { code: 'payload_too_large', message: 'too big' });
    const a = await fake.gateway.nextPost();
    expect(a.body.frames.map((f) => f.type === 'send' && f.text)).toEqual(['a']);
    a.answer(413, { code: 'payload_too_large', message: 'too big' });
    await expect(big[0]).rejects.toMatchObject({ code: 'payload_too_large' });
    const b = await fake.gateway.nextPost();
    expect(b.body.frames.map((f) => f.type === 'send' && f.text)).toEqual(['b']);
    b.answer();
    for (const p of [blocker, big[1]!]) p.catch(() => {});
    fake.client.close();
  });

  it('goes offline on a close event with 4000 and reconnects (jittered) after one with 1001 or a stream that just ends', async () => {
    const fake = sseClient({ backoffMinMs: 50, backoffMaxMs: 50 });
    const stream = await connectedIn(fake);
    stream.closeWith(1001, 'draining');
    const second = await fake.gateway.streamCount(2);
    second.welcome('alice', 'inbox.s2');
    const rejoin = await fake.gateway.nextPost();
    rejoin.answer();
    second.push({ type: 'joined', room: 'r', ref: rejoin.body.frames[0]!.ref!, count: 1, members: ['alice'], history: [] });
    await vi.waitFor(() => expect(fake.client.state).toBe('connected'));
    second.end(); // a crash: no close event
    const third = await fake.gateway.streamCount(3);
    third.welcome('alice', 'inbox.s3');
    (await fake.gateway.nextPost()).answer();
    await vi.waitFor(() => expect(fake.states.filter((s) => s.startsWith('connected'))).toHaveLength(2)); // the rejoin's answer is still due
    third.push({ type: 'joined', room: 'r', ref: fake.gateway.last('join').ref, count: 1, members: ['alice'], history: [] });
    await vi.waitFor(() => expect(fake.client.state).toBe('connected'));
    third.closeWith(4000, 'banned');
    await vi.waitFor(() => expect(fake.client.state).toBe('offline'));
    await new Promise((r) => setTimeout(r, 100));
    expect(fake.gateway.streams).toHaveLength(3);
    expect(fake.states).toEqual([
      'connecting', 'connected:sse', 'reconnecting:1001', 'reconnecting', 'connected:sse', 'reconnecting:1006', 'reconnecting', 'connected:sse', 'offline:4000',
    ]);
  });

  it('goes offline on 4000 when a POST\'s 404 for the closed session overtakes the stream\'s close event, and does not reconnect', async () => {
    // The application disconnected the user while a POST was out: the gateway answers it 404 on one
    // connection and writes the close event on another, which may come second.
    const fake = sseClient({ backoffMinMs: 50, backoffMaxMs: 50 });
    const stream = await connectedIn(fake);
    void fake.client.send('r', 'in flight').catch(() => undefined);
    (await fake.gateway.nextPost()).answer(404, { code: 'unknown_session', message: 'gone' });
    await new Promise((r) => setTimeout(r, 50));
    stream.closeWith(4000, 'disconnected by the application');
    await vi.waitFor(() => expect(fake.client.state).toBe('offline'));
    await new Promise((r) => setTimeout(r, 200));
    expect(fake.gateway.streams).toHaveLength(1);
    expect(fake.states).toEqual(['connecting', 'connected:sse', 'offline:4000']);
  });

  it('takes a stream that is silent for streamSilenceMs as dead; heartbeats keep it alive', async () => {
    const fake = sseClient({ streamSilenceMs: 300 });
    const stream = await connectedIn(fake);
    for (let i = 0; i < 6; i++) {
      await new Promise((r) => setTimeout(r, 100));
      stream.write(':\n\n');
    }
    expect(fake.gateway.streams).toHaveLength(1);
    const silentFrom = Date.now();
    await fake.gateway.streamCount(2);
    expect(Date.now() - silentFrom).toBeGreaterThanOrEqual(250);
    expect(stream.aborted).toBe(true);
    expect(fake.states).toContain('reconnecting:1006');
    fake.client.close();
  });
});

describe('ChatClient: WebSocket first, the fallback when it does not reach welcome', () => {
  function bothClient(options: Partial<ChatClientOptions> = {}) {
    const gateway = new FakeGateway();
    const sockets: FakeSocket[] = [];
    const client = new ChatClient({
      url: 'ws://fake/ws', user: 'alice', backoffMinMs: 1, backoffMaxMs: 1, welcomeTimeoutMs: 100, storage: null, fetch: gateway.fetch,
      webSocket: () => {
        const socket = new FakeSocket();
        sockets.push(socket);
        return socket;
      },
      ...options,
    });
    return { gateway, sockets, client };
  }

  it('falls back to the stream when the WebSocket opens and then stalls, and starts with the stream while that is remembered', async () => {
    const store = new Map<string, string>();
    const storage = { getItem: (k: string) => store.get(k) ?? null, setItem: (k: string, v: string) => void store.set(k, v), removeItem: (k: string) => void store.delete(k) };
    const fake = bothClient({ storage });
    const started = Date.now();
    const connecting = fake.client.connect();
    await vi.waitFor(() => expect(fake.sockets).toHaveLength(1));
    fake.sockets[0]!.readyState = 1; // the upgrade went through, then nothing
    const stream = await fake.gateway.streamCount(1);
    expect(Date.now() - started).toBeGreaterThanOrEqual(90);
    expect(fake.sockets[0]!.readyState).toBe(3); // given up
    stream.welcome();
    await connecting;
    expect(fake.client.transport).toBe('sse');
    expect(Number(store.get('@chat/client:websocket-fallback:fake'))).toBeGreaterThan(Date.now() + 60_000);
    // The next connection starts with the stream.
    stream.end();
    const second = await fake.gateway.streamCount(2);
    second.welcome();
    await vi.waitFor(() => expect(fake.client.state).toBe('connected'));
    expect(fake.sockets).toHaveLength(1);
    fake.client.close();
    // So does another client that shares the storage (a reloaded page).
    const reloaded = bothClient({ storage });
    reloaded.client.connect().catch(() => {});
    await reloaded.gateway.streamCount(1);
    expect(reloaded.sockets).toHaveLength(0);
    reloaded.client.close();
  });

  it('remembers nothing when the stream fails too (the gateway is down), and a server close before welcome is no reason to fall back', async () => {
    // No welcome timeout here: every attempt ends by what the test does to it. With bothClient's 100 ms, a test
    // process that stalled that long before opening the third socket (both cores busy) saw the client give it up.
    const fake = bothClient({ backoffMinMs: 20, backoffMaxMs: 20, welcomeTimeoutMs: 60_000 });
    fake.gateway.down = true;
    const connecting = fake.client.connect();
    await vi.waitFor(() => expect(fake.sockets).toHaveLength(1));
    fake.sockets[0]!.drop(1006); // refused
    await vi.waitFor(() => expect(fake.sockets).toHaveLength(2)); // the stream failed too: after a backoff, WebSocket first again
    fake.sockets[1]!.drop(1013, 'overloaded'); // the gateway answered: a backoff, no fallback
    await vi.waitFor(() => expect(fake.sockets).toHaveLength(3));
    expect(fake.gateway.streams).toHaveLength(0);
    fake.gateway.down = false;
    fake.sockets[2]!.open('alice');
    await connecting;
    expect(fake.client.transport).toBe('websocket');
    fake.client.close();
  });

  it('forced to websocket, never opens a stream', async () => {
    const fake = bothClient({ transports: ['websocket'], backoffMinMs: 10, backoffMaxMs: 10 });
    void fake.client.connect().catch(() => {});
    await vi.waitFor(() => expect(fake.sockets.length).toBeGreaterThanOrEqual(3), { timeout: 2000 });
    expect(fake.gateway.streams).toHaveLength(0);
    fake.client.close();
  });

  it('leaves out a transport the runtime lacks, and refuses to start with none', () => {
    // Node 20 has fetch and no global WebSocket.
    expect(new ChatClient({ url: 'ws://x/ws', user: 'a' }).transports).toEqual(['sse']);
    expect(() => new ChatClient({ url: 'ws://x/ws', user: 'a', transports: ['websocket'] })).toThrow(/webSocket/);
  });

  it('tries a WebSocket again once the fallback is no longer remembered, and moves over without losing a send', async () => {
    const fake = bothClient({ fallbackMemoryMs: 300 });
    const seen: string[] = [];
    fake.client.on('message', (m) => seen.push(m.id));
    const connecting = fake.client.connect();
    await vi.waitFor(() => expect(fake.sockets).toHaveLength(1));
    const stream = await fake.gateway.streamCount(1); // the socket never answered
    stream.welcome();
    await connecting;
    const joining = fake.client.join('r');
    const joinPost = await fake.gateway.nextPost();
    joinPost.answer();
    stream.push({ type: 'joined', room: 'r', ref: joinPost.body.frames[0]!.ref!, count: 1, members: ['alice'], history: [message('1-1')] });
    await joining;
    const sending = fake.client.send('r', 'across');
    const sendPost = await fake.gateway.nextPost();
    sendPost.answer();
    // ~300 ms later: a WebSocket beside the stream.
    await vi.waitFor(() => expect(fake.sockets).toHaveLength(2), { timeout: 2000 });
    expect(stream.aborted).toBe(false);
    const states: string[] = [];
    fake.client.on('state', (s, d) => states.push(`${s}:${d.transport}`));
    fake.sockets[1]!.open('alice');
    await vi.waitFor(() => expect(fake.sockets[1]!.sent.some((f) => f.type === 'join')).toBe(true));
    expect(stream.aborted).toBe(true);
    const rejoin = fake.sockets[1]!.last('join');
    expect(rejoin.since).toBe('1-1');
    fake.sockets[1]!.push({ type: 'joined', room: 'r', ref: rejoin.ref, count: 1, members: ['alice'], history: [], recovered: true });
    await vi.waitFor(() => expect(fake.sockets[1]!.sent.some((f) => f.type === 'send')).toBe(true));
    const resent = fake.sockets[1]!.last('send');
    expect(resent.key).toBe(sendPost.body.frames[0]!.key);
    fake.sockets[1]!.push({ type: 'ack', ref: resent.ref, id: '1-2', ts: 1 }, message('1-2', 'across'));
    await expect(sending).resolves.toMatchObject({ id: '1-2' });
    expect(fake.client.transport).toBe('websocket');
    expect(states).toEqual(['connected:websocket']);
    expect(seen).toEqual(['1-1', '1-2']);
    fake.client.close();
  });

  it('stays on the stream when the WebSocket tried again does not answer, and tries later again', async () => {
    const fake = bothClient({ fallbackMemoryMs: 200 });
    fake.client.connect().catch(() => {});
    const stream = await fake.gateway.streamCount(1);
    stream.welcome();
    await vi.waitFor(() => expect(fake.client.state).toBe('connected'));
    await vi.waitFor(() => expect(fake.sockets).toHaveLength(2), { timeout: 2000 }); // the probe; it stalls
    await vi.waitFor(() => expect(fake.sockets).toHaveLength(3), { timeout: 2000 }); // and the next one
    expect(fake.client.transport).toBe('sse');
    expect(stream.aborted).toBe(false);
    fake.client.close();
    expect(fake.sockets.every((s) => s.readyState === 3)).toBe(true);
  });
});
