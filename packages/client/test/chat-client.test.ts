import { afterEach, describe, expect, it, vi } from 'vitest';
import { ChatClient } from '../src/index.js';
import { FakeSocket, fakeClient, joined, message } from './fake-socket.js';

describe('ChatClient: history on a (re)join', () => {
  it('hands a joined frame\'s history to the application before the live message read with it', async () => {
    const fake = fakeClient();
    const connecting = fake.client.connect();
    await vi.waitFor(() => expect(fake.sockets).toHaveLength(1));
    fake.socket().open('alice');
    await connecting;
    const joining = fake.client.join('r');
    const join = fake.socket().last('join');
    // One read: the joined frame with two stored messages, and the next live one.
    fake.socket().push(
      { type: 'joined', room: 'r', ref: join.ref, count: 1, members: ['alice'], history: [message('1-1'), message('1-2')] },
      message('1-3'),
    );
    await joining;
    expect(fake.seen).toEqual(['1-1', '1-2', '1-3']);

    // The same after a reconnect: the rejoin's history comes before what follows it.
    fake.socket().drop();
    await vi.waitFor(() => expect(fake.sockets).toHaveLength(2));
    fake.socket().open('alice');
    await vi.waitFor(() => expect(fake.socket().sent.some((f) => f.type === 'join')).toBe(true));
    const rejoin = fake.socket().last('join');
    expect(rejoin.since).toBe('1-3');
    fake.socket().push(
      { type: 'joined', room: 'r', ref: rejoin.ref, count: 1, members: ['alice'], history: [message('1-4'), message('1-5')], recovered: true },
      message('1-6'),
    );
    await vi.waitFor(() => expect(fake.client.state).toBe('connected'));
    expect(fake.seen).toEqual(['1-1', '1-2', '1-3', '1-4', '1-5', '1-6']);
    fake.client.close();
  });
});

describe('ChatClient: a rejoin answered late', () => {
  it('still takes the history of a rejoin whose request timed out before its answer came', async () => {
    const fake = fakeClient({ requestTimeoutMs: 100 });
    await joined(fake);
    fake.socket().push(message('1-1'));
    fake.socket().drop();
    await vi.waitFor(() => expect(fake.sockets).toHaveLength(2));
    fake.socket().open('alice');
    await vi.waitFor(() => expect(fake.socket().sent.some((f) => f.type === 'join')).toBe(true));
    const rejoin = fake.socket().last('join');
    await vi.waitFor(() => expect(fake.client.state).toBe('connected')); // it timed out; the client went on
    const gaps: boolean[] = [];
    fake.client.on('joined', (_frame, info) => gaps.push(info.gap));
    fake.socket().push({ type: 'joined', room: 'r', ref: rejoin.ref, count: 1, members: ['alice'], history: [message('1-1'), message('1-2')], recovered: true }, message('1-3'));
    expect(fake.seen).toEqual(['1-1', '1-2', '1-3']);
    expect(gaps).toEqual([false]);
    fake.client.close();
  });
});

describe('ChatClient: sends are resent, never failed for a dropped connection', () => {
  afterEach(() => vi.useRealTimers());

  it('gives every send a fresh key unless one is given', async () => {
    const fake = fakeClient();
    await joined(fake);
    const sends = [fake.client.send('r', 'a'), fake.client.send('r', 'b', { key: 'mine-1' }), fake.client.dm('bob', 'c')];
    for (const s of sends) s.catch(() => undefined); // failed by close() below
    const [a, b, c] = fake.socket().sent.filter((f) => f.type === 'send' || f.type === 'dm');
    expect(a!.key).toMatch(/^[0-9a-f]{32}$/);
    expect(b!.key).toBe('mine-1');
    expect(c!.key).toMatch(/^[0-9a-f]{32}$/);
    expect(new Set([a!.key, c!.key]).size).toBe(2);
    fake.client.close();
  });

  it('resends a send without an ack after the reconnect and the rejoin, with the same key, and resolves once', async () => {
    const fake = fakeClient();
    await joined(fake);
    const first = fake.client.send('r', 'hello');
    const original = fake.socket().last('send');
    const reconnected = fake.reconnect();
    fake.socket().drop(); // before the ack
    fake.client.send('r', 'later').catch(() => undefined); // made while disconnected
    await reconnected;
    await vi.waitFor(() => expect(fake.socket().sent.filter((f) => f.type === 'send').length).toBeGreaterThan(0));
    const resent = fake.socket().sent.filter((f) => f.type === 'send');
    // The dropped one first, then the one made while disconnected; both after the rejoin.
    expect(resent.map((f) => [f.key, f.text])).toEqual([[original.key, 'hello'], [expect.any(String), 'later']]);
    expect(fake.socket().sent.findIndex((f) => f.type === 'join')).toBeLessThan(fake.socket().sent.findIndex((f) => f.type === 'send'));
    fake.socket().push({ type: 'ack', ref: resent[0]!.ref, id: '5-0', ts: 7 });
    await expect(first).resolves.toEqual({ type: 'ack', ref: resent[0]!.ref, id: '5-0', ts: 7 });
    fake.client.close();
  });

  it('retries a send refused as unavailable, with the same key, until it is acknowledged', async () => {
    const fake = fakeClient();
    await joined(fake);
    const sending = fake.client.send('r', 'slow redis');
    const attempt = fake.socket().last('send');
    fake.socket().push({ type: 'error', ref: attempt.ref, code: 'unavailable', message: 'broker down' });
    await vi.waitFor(() => expect(fake.socket().sent.filter((f) => f.type === 'send')).toHaveLength(2), { timeout: 2000 });
    const retry = fake.socket().last('send');
    expect(retry.key).toBe(attempt.key);
    fake.socket().push({ type: 'ack', ref: retry.ref, id: '9-0', ts: 3 });
    await expect(sending).resolves.toMatchObject({ id: '9-0' });
    fake.client.close();
  });

  it('reports unavailable once the retry budget is spent, and a refusal that retrying cannot fix at once', async () => {
    const fake = fakeClient({ retryForMs: 600 });
    await joined(fake);
    const outcome = fake.client.send('r', 'never').then(() => 'acknowledged', (err: unknown) => err);
    let settled: unknown;
    void outcome.then((value) => (settled = value));
    const attempts = () => fake.socket().sent.filter((f) => f.type === 'send');
    for (let refused = 0; settled === undefined; refused++) {
      await vi.waitFor(() => expect(attempts().length > refused || settled !== undefined).toBe(true), { timeout: 2000 });
      if (settled !== undefined) break;
      fake.socket().push({ type: 'error', ref: attempts().at(-1)!.ref, code: 'unavailable', message: 'broker down' });
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    expect(await outcome).toMatchObject({ code: 'unavailable' });
    expect(attempts().length).toBeGreaterThan(1);
    expect(new Set(attempts().map((f) => f.key)).size).toBe(1);
    const forbidden = fake.client.send('r', 'not allowed');
    fake.socket().push({ type: 'error', ref: fake.socket().last('send').ref, code: 'forbidden', message: 'no' });
    await expect(forbidden).rejects.toMatchObject({ code: 'forbidden' });
    fake.client.close();
  });

  it('bounds what waits for a connection, and fails it all on close', async () => {
    const fake = fakeClient({ queueLimit: 2 });
    await joined(fake);
    fake.socket().drop();
    const waiting = [fake.client.send('r', '1'), fake.client.send('r', '2')];
    await expect(fake.client.send('r', '3')).rejects.toMatchObject({ code: 'queue_full' });
    fake.client.close();
    for (const w of waiting) await expect(w).rejects.toMatchObject({ code: 'disconnected' });
  });
});

describe('ChatClient: what the application\'s backend does (server API)', () => {
  it('takes a server-side join as its own: history first, live after, and rejoined after a reconnect', async () => {
    const fake = fakeClient();
    await joined(fake, 'own');
    const joins: Array<[string, boolean | undefined]> = [];
    fake.client.on('joined', (frame, info) => joins.push([frame.room, info.byServer]));
    fake.socket().push(
      { type: 'joined', room: 'r', count: 1, members: ['alice'], history: [message('1-1'), message('1-2')] },
      message('1-3'),
    );
    expect(fake.seen).toEqual(['1-1', '1-2', '1-3']);
    expect(joins).toEqual([['r', true]]);
    expect(fake.client.rooms.sort()).toEqual(['own', 'r']);
    fake.socket().drop();
    await fake.reconnect();
    const rejoin = fake.socket().sent.find((f) => f.type === 'join' && f.room === 'r');
    expect(rejoin).toMatchObject({ since: '1-3' });
    fake.client.close();
  });

  it('rejoins with since = the newest id its joined frame gave when no message came meanwhile', async () => {
    const fake = fakeClient();
    const connecting = fake.client.connect();
    await vi.waitFor(() => expect(fake.sockets).toHaveLength(1));
    fake.socket().open('alice');
    await connecting;
    const joining = fake.client.join('quiet');
    fake.socket().push({ type: 'joined', room: 'quiet', ref: fake.socket().last('join').ref, count: 1, members: ['alice'], history: [], newest: '7-0' });
    await joining;
    fake.socket().drop();
    await fake.reconnect();
    expect(fake.socket().sent.find((f) => f.type === 'join')).toMatchObject({ room: 'quiet', since: '7-0' });
    fake.client.close();
  });

  it('drops a room the backend took it out of, and stays offline after a disconnect (4000)', async () => {
    const fake = fakeClient();
    await joined(fake);
    const left: string[] = [];
    fake.client.on('left', (frame) => left.push(frame.room));
    fake.socket().push({ type: 'left', room: 'r' }, message('1-9'));
    expect(left).toEqual(['r']);
    expect(fake.client.rooms).toEqual([]);
    expect(fake.seen).toEqual([]);
    const states: string[] = [];
    fake.client.on('state', (state, detail) => states.push(`${state}:${detail.code}`));
    fake.socket().drop(4000, 'banned');
    await new Promise((r) => setTimeout(r, 20));
    expect(states).toEqual(['offline:4000']);
    expect(fake.sockets).toHaveLength(1);
    await expect(fake.client.send('r', 'after')).rejects.toMatchObject({ code: 'disconnected' });
  });
});

describe('ChatClient: reconnects spread out, over time and over gateways', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  /** `count` clients on three URLs; each records when and where it opened sockets. */
  function fleet(count: number, backoffMinMs: number) {
    const opened: Array<Array<{ url: string; at: number; socket: FakeSocket }>> = [];
    const clients = Array.from({ length: count }, (_, i) => {
      opened.push([]);
      return new ChatClient({
        url: ['ws://a/ws', 'ws://b/ws', 'ws://c/ws'], user: `u${i}`, backoffMinMs, backoffMaxMs: 10 * backoffMinMs,
        webSocket: (url) => {
          const socket = new FakeSocket();
          opened[i]!.push({ url: url.slice(0, url.indexOf('?')), at: Date.now(), socket });
          return socket;
        },
      });
    });
    return { clients, opened };
  }

  it.each([
    ['1001 from a draining gateway', 1001],
    ['a crash (1006)', 1006],
  ])('after %s: reconnects over the whole first backoff window, each to a random other URL', async (_label, code) => {
    vi.useFakeTimers();
    const { clients, opened } = fleet(300, 1000);
    for (const [i, client] of clients.entries()) {
      void client.connect().catch(() => {});
      opened[i]![0]!.socket.open(`u${i}`);
    }
    expect(new Set(opened.map((o) => o[0]!.url))).toEqual(new Set(['ws://a/ws'])); // all on the first URL, as in a deploy's worst case
    const droppedAt = Date.now();
    for (const o of opened) o[0]!.socket.drop(code);
    await vi.advanceTimersByTimeAsync(1000);
    const again = opened.map((o) => o[1]);
    expect(again.every((s) => s !== undefined)).toBe(true);
    // Never the URL that just dropped: the dropped gateway's clients go to both others, about evenly.
    const toB = again.filter((s) => s!.url === 'ws://b/ws').length;
    expect(again.filter((s) => s!.url === 'ws://c/ws').length).toBe(300 - toB);
    expect(toB).toBeGreaterThan(90);
    expect(toB).toBeLessThan(210);
    // Spread over the window: no tenth of it holds more than a quarter of the reconnects.
    const slices = new Array<number>(10).fill(0);
    for (const s of again) slices[Math.min(9, Math.floor((s!.at - droppedAt) / 100))]!++;
    expect(Math.max(...slices)).toBeLessThan(75);
    for (const client of clients) client.close();
  });
});
