import http from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { mixedTransport, planWorkers, type LoadOptions } from '../src/coordinator.js';
import { planRooms, type RoomsOptions } from '../src/rooms.js';
import { httpBase, MAX_FRAMES_PER_POST, PostBatcher, SseParser, type PostOutcome } from '../src/sse.js';
import { createClient, type ClientEvents } from '../src/transport.js';

describe('SseParser', () => {
  function parse(chunks: string[]): Array<string | ':'> {
    const out: Array<string | ':'> = [];
    const parser = new SseParser((data) => out.push(data), () => out.push(':'));
    for (const c of chunks) parser.push(c);
    return out;
  }

  const stream = ':\n\ndata: {"type":"welcome","session":"a.b"}\n\ndata: {"type":"message","text":"é ü"}\n\n:\n\ndata: {"type":"ack"}\n\n';
  const events = [':', '{"type":"welcome","session":"a.b"}', '{"type":"message","text":"é ü"}', ':', '{"type":"ack"}'];

  it('reads events and heartbeat comments, the gateway\'s way (one data: line, \\n line ends)', () => {
    expect(parse([stream])).toEqual(events);
  });

  it('reads the same events however the stream is cut into chunks', () => {
    fc.assert(fc.property(fc.uniqueArray(fc.integer({ min: 1, max: stream.length - 1 }), { maxLength: 12 }), (cuts) => {
      const at = [0, ...cuts.sort((a, b) => a - b), stream.length];
      expect(parse(at.slice(1).map((end, i) => stream.slice(at[i], end)))).toEqual(events);
    }));
    expect(parse([...stream])).toEqual(events); // one character at a time
  });

  it('reads what other servers may send: \\r\\n line ends cut anywhere, several data: lines, other fields, data: without a space', () => {
    const other = 'retry: 1000\r\n\r\nid: 7\r\nevent: x\r\ndata: {"a":1,\r\ndata:"b":2}\r\n\r\ndata:{"c":3}\r\n\r\n: hi\r\n\r\n';
    const expected = [':', '{"a":1,\n"b":2}', '{"c":3}', ':'];
    expect(parse([other])).toEqual(expected);
    for (let cut = 1; cut < other.length; cut++) expect(parse([other.slice(0, cut), other.slice(cut)])).toEqual(expected);
  });

  it('keeps an unfinished event until its blank line comes', () => {
    const got: string[] = [];
    const parser = new SseParser((d) => got.push(d));
    parser.push('data: {"x":1}\n');
    expect(got).toEqual([]);
    parser.push('\ndata: {"y"');
    expect(got).toEqual(['{"x":1}']);
  });
});

describe('PostBatcher', () => {
  /** A fake POST: each call waits until the test answers it. */
  function fakePoster() {
    const calls: Array<{ body: { session: string; frames: unknown[] }; answer: (o: PostOutcome) => void }> = [];
    const post = (body: string) => new Promise<PostOutcome>((answer) => calls.push({ body: JSON.parse(body) as { session: string; frames: unknown[] }, answer }));
    return { calls, post };
  }
  const tick = () => new Promise((r) => setImmediate(r));
  const frame = (n: number) => JSON.stringify({ type: 'send', room: 'r', text: String(n) });

  it('sends nothing before the session is known, then one POST with everything queued', async () => {
    const { calls, post } = fakePoster();
    const batcher = new PostBatcher(post, () => {});
    batcher.send(frame(1));
    batcher.send(frame(2));
    await tick();
    expect(calls).toHaveLength(0);
    batcher.start('s.1');
    await tick();
    expect(calls).toHaveLength(1);
    expect(calls[0]!.body).toEqual({ session: 's.1', frames: [{ type: 'send', room: 'r', text: '1' }, { type: 'send', room: 'r', text: '2' }] });
  });

  it('keeps one POST in flight; frames given meanwhile go together in the next, at most 100 a POST, in order', async () => {
    const { calls, post } = fakePoster();
    const batcher = new PostBatcher(post, () => {});
    batcher.start('s');
    batcher.send(frame(0)); // alone: nothing else came in the same turn
    await tick();
    expect(calls).toHaveLength(1);
    for (let n = 1; n <= 250; n++) batcher.send(frame(n));
    await tick();
    expect(calls).toHaveLength(1); // still in flight
    const sent: number[] = [];
    for (let i = 0; i < 4; i++) {
      const call = calls[i]!;
      sent.push(...call.body.frames.map((f) => Number((f as { text: string }).text)));
      call.answer({ status: 202, body: '' });
      await tick();
      expect(calls).toHaveLength(Math.min(i + 2, 4));
    }
    expect(calls.map((c) => c.body.frames.length)).toEqual([1, MAX_FRAMES_PER_POST, MAX_FRAMES_PER_POST, 50]);
    expect(sent).toEqual([...Array(251).keys()]);
    expect([batcher.posts, batcher.frames, batcher.queued, batcher.inFlight]).toEqual([4, 251, 0, false]);
  });

  it('a POST not answered 202 drops its frames and every one after it, says how many, and sends nothing more', async () => {
    const { calls, post } = fakePoster();
    const failures: Array<[number, number]> = [];
    const batcher = new PostBatcher(post, (outcome, frames) => failures.push([outcome.status, frames]));
    batcher.start('s');
    batcher.send(frame(1));
    await tick();
    batcher.send(frame(2));
    batcher.send(frame(3));
    calls[0]!.answer({ status: 404, body: '{"code":"unknown_session"}' });
    await tick();
    expect(failures).toEqual([[404, 3]]);
    batcher.send(frame(4));
    await tick();
    expect(calls).toHaveLength(1);
  });
});

describe('httpBase', () => {
  it('turns the WebSocket URL a client is given into the gateway\'s HTTP base', () => {
    expect(httpBase('ws://127.0.0.1:8080/ws')).toBe('http://127.0.0.1:8080');
    expect(httpBase('wss://chat.example/ws')).toBe('https://chat.example');
    expect(httpBase('http://127.0.0.1:9/')).toBe('http://127.0.0.1:9');
    expect(httpBase('ws://lb:8080/chat/ws/')).toBe('http://lb:8080/chat');
  });
});

describe('mixed runs', () => {
  const options = {
    scenario: 'fanout', transport: 'mixed', urls: ['ws://a/ws', 'ws://b/ws'], clients: 40, rooms: 4, senders: 4,
    rate: 10, size: 100, duration: 1, ramp: 0, workers: 2, churn: 0, findMax: false, maxP99Ms: 50, stepSeconds: 1,
    stepFactor: 1.5, maxSteps: 1, metricsUrls: [], localAddresses: [], serverPids: [], resend: false, progress: () => {},
  } satisfies LoadOptions;
  type Planned = { transport?: string; url: string; rooms: string[]; sends: unknown[] };

  /** About half on each transport, overall, among the senders and on every URL; both in every room of 3 or more. */
  function expectMixed(clients: Planned[], urls: number, members: number): void {
    const half = (list: Planned[]) => {
      const sse = list.filter((c) => c.transport === 'sse').length;
      expect(list.every((c) => c.transport === 'ws' || c.transport === 'sse')).toBe(true);
      expect(Math.abs(sse - list.length / 2)).toBeLessThanOrEqual(Math.max(1, list.length * 0.1));
    };
    half(clients);
    half(clients.filter((c) => c.sends.length > 0));
    for (let u = 0; u < urls; u++) half(clients.filter((c) => c.url === clients.find((x) => x.url.includes(String.fromCharCode(97 + u)))!.url));
    if (members < 2) return;
    const byRoom = new Map<string, Set<string | undefined>>();
    for (const c of clients) for (const room of c.rooms) byRoom.set(room, (byRoom.get(room) ?? new Set()).add(c.transport));
    for (const ts of byRoom.values()) expect(ts.size).toBe(2);
  }
  const urlsOf = (n: number) => Array.from({ length: n }, (_, i) => `ws://${String.fromCharCode(97 + i)}/ws`);

  it('fanout: half the clients on each transport, both in every room, half the senders each, both on every URL', () => {
    for (const [urls, rooms, members] of [[1, 4, 10], [2, 4, 10], [3, 20, 10], [4, 20, 3], [2, 40, 2], [3, 40, 2]] as const) {
      const clients = planWorkers({ ...options, urls: urlsOf(urls), rooms, senders: rooms, clients: rooms * members }).flatMap((p) => p.clients);
      expectMixed(clients, urls, members);
    }
    expect(planWorkers({ ...options, transport: 'sse' }).flatMap((p) => p.clients).every((c) => c.transport === undefined)).toBe(true);
  });

  it('many-rooms and big-room: the same', () => {
    const base = {
      transport: 'mixed', urls: ['ws://a/ws', 'ws://b/ws'], rates: [], size: 100, duration: 1, ramp: 0, workers: 2, localAddresses: [],
      checkpoints: [], probeJoins: 10, probeRate: 10, idleSeconds: 0, serverPids: [], redisUrls: [], gcInspectorPorts: [], maxP99Ms: 50, progress: () => {},
    } satisfies Partial<RoomsOptions>;
    for (const [urls, members] of [[2, 2], [3, 2], [2, 3], [3, 3], [4, 2]] as const) {
      const { plans } = planRooms({ ...base, urls: urlsOf(urls), scenario: 'many-rooms', rooms: 40, members, clients: 40 * members, senders: 40 });
      expectMixed(plans.flatMap((p) => p.clients), urls, members);
    }
    const big = planRooms({ ...base, scenario: 'big-room', rooms: 1, members: 40, clients: 40, senders: 4 }).plans;
    expectMixed(big.flatMap((p) => p.clients), 2, 40);
    expect(big[0]!.probes.filter((p) => p.transport === 'sse')).toHaveLength(10);
    expect(mixedTransport(0, 2)).toBe('ws');
  });
});

/**
 * The SSE client against a fake gateway in this process: the contract's wire
 * format only (welcome with session, replies on the stream, POSTs answered 202,
 * a close event), not the gateway's behaviour.
 */
describe('the SSE load client against a fake gateway', () => {
  let server: http.Server | undefined;
  afterEach(async () => {
    server?.closeAllConnections();
    await new Promise((r) => server?.close(r));
  });

  async function fakeGateway() {
    const streams = new Map<string, http.ServerResponse>();
    const posts: Array<{ session: string; frames: Array<{ type: string; ref?: string; room?: string; text?: string }> }> = [];
    let seq = 0;
    server = http.createServer((req, res) => {
      const url = new URL(req.url!, 'http://x');
      if (req.method === 'GET' && url.pathname === '/sse') {
        if (!url.searchParams.get('user')) {
          res.writeHead(401).end('{"code":"forbidden"}');
          return;
        }
        const session = `inbox.${url.searchParams.get('user')}-${++seq}-xxxxxxxxxxxxxxxx`;
        streams.set(session, res);
        res.writeHead(200, { 'Content-Type': 'text/event-stream' });
        res.write(':\n\n');
        res.write(`data: {"type":"welcome","user":"${url.searchParams.get('user')}","connection":"c1","node":"fake-1","session":"${session}"}\n\n`);
        return;
      }
      if (req.method === 'POST' && url.pathname === '/sse/send') {
        let body = '';
        req.on('data', (c: Buffer) => { body += c.toString(); });
        req.on('end', () => {
          const post = JSON.parse(body) as (typeof posts)[number];
          posts.push(post);
          const stream = streams.get(post.session);
          if (!stream) {
            res.writeHead(404).end('{"code":"unknown_session"}');
            return;
          }
          res.writeHead(202, { 'Content-Type': 'application/json' }).end(`{"accepted":${post.frames.length}}`);
          let replies = '';
          for (const f of post.frames) {
            if (f.type === 'join') replies += `data: {"type":"joined","room":"${f.room}","ref":"${f.ref}","members":[],"count":1,"history":[]}\n\n`;
            if (f.type === 'send') {
              replies += `data: {"type":"ack","id":"1-${posts.length}"}\n\n`;
              replies += `data: {"type":"message","room":"${f.room}","id":"1-${posts.length}","user":"u","text":"${f.text}","ts":1}\n\n`;
            }
          }
          // In two writes, cut in the middle of an event.
          stream.write(replies.slice(0, replies.length - 30));
          setTimeout(() => stream.write(replies.slice(replies.length - 30)), 5);
        });
        return;
      }
      res.writeHead(404).end();
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    return { url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}/ws`, streams, posts };
  }

  function recorder() {
    const seen = { messages: [] as Array<{ room: string; id: string; text: string }>, closed: [] as number[] };
    const events: ClientEvents = { message: (m) => seen.messages.push(m), notice: () => {}, closed: (code) => seen.closed.push(code), reconnected: () => {} };
    return { seen, events };
  }

  it('connects with welcome, joins and sends through POSTs to the session, reads replies and messages from the stream, closes once', async () => {
    const gw = await fakeGateway();
    const { seen, events } = recorder();
    const client = createClient('sse', { url: gw.url, urls: [gw.url], user: 'u1', events });
    expect(await client.connect()).toBe("fake-1");
    await client.join('lobby');
    const answers = await Promise.all([1, 2, 3].map((n) => new Promise<boolean>((r) => client.send('lobby', `t${n}`, r))));
    expect(answers).toEqual([true, true, true]);
    await new Promise((r) => setTimeout(r, 50));
    expect(seen.messages.map((m) => m.text)).toEqual(['t1', 't2', 't3']);
    // The three sends were given in one turn: one POST after the join's.
    expect(gw.posts.map((p) => p.frames.map((f) => f.type))).toEqual([['join'], ['send', 'send', 'send']]);
    expect(gw.posts.every((p) => p.session === [...gw.streams.keys()][0])).toBe(true);
    client.close();
    await new Promise((r) => setTimeout(r, 50));
    expect(seen.closed).toEqual([1000]);
  });

  it('a close event ends the session with its code; a refused stream fails connect; a 404 POST ends it too', async () => {
    const gw = await fakeGateway();
    const a = recorder();
    const client = createClient('sse', { url: gw.url, urls: [gw.url], user: 'u2', events: a.events });
    await client.connect();
    const stream = [...gw.streams.values()][0]!;
    stream.end('data: {"type":"close","code":1013,"reason":"slow consumer"}\n\n');
    await new Promise((r) => setTimeout(r, 50));
    expect(a.seen.closed).toEqual([1013]);
    expect(await new Promise<boolean>((r) => client.send('lobby', 'late', r))).toBe(false);
    await expect(client.join('lobby')).rejects.toThrow(/not connected/);

    await expect(createClient('sse', { url: gw.url, urls: [gw.url], user: '', events: recorder().events }).connect()).rejects.toThrow(/401/);

    const b = recorder();
    const other = createClient('sse', { url: gw.url, urls: [gw.url], user: 'u3', events: b.events });
    await other.connect();
    gw.streams.clear(); // the fake now answers 404: no gateway holds the session
    await expect(other.join('lobby')).rejects.toThrow(/closed/);
    expect(b.seen.closed).toEqual([1006]);
  });
});
