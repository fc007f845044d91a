import { ChatClient, ChatRequestError, type ConnectionState } from '@chat/client';
import type { AckFrame, MessageFrame } from '@chat/protocol';
import { freeStablePort, sleep, TestClient, uniquePrefix, waitFor } from '@chat/testkit';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { readyz, startGateway, type GatewayProcess } from './helpers/gateways.js';

const webSocket = (url: string) => new WebSocket(url) as unknown as import('@chat/client').WebSocketLike;

/** A ChatClient that records what the application sees. */
function recorded(client: ChatClient) {
  const messages: MessageFrame[] = [];
  const states: ConnectionState[] = [];
  client.on('message', (m) => messages.push(m));
  client.on('state', (s) => states.push(s));
  return { messages, states };
}

describe('@chat/client against real gateways', () => {
  const prefix = uniquePrefix('client');
  let a: GatewayProcess;
  let b: GatewayProcess;
  const env = () => ({ REDIS_URL: inject('redisUrl'), REDIS_PREFIX: prefix, RATE_LIMIT_PER_SEC: '1000', RATE_LIMIT_BURST: '1000' });

  beforeAll(async () => {
    [a, b] = await Promise.all([startGateway({ ...env(), NODE_ID: 'a' }), startGateway({ ...env(), NODE_ID: 'b' })]);
    await waitFor(async () => (await readyz(a)) === 200 && (await readyz(b)) === 200, { what: 'ready' });
  });
  afterAll(async () => {
    await Promise.all([a, b].map((g) => g.stop()));
  });

  it('resolves send with the ack and delivers the message once', async () => {
    const client = new ChatClient({ url: a.wsUrl, user: 'acker', webSocket });
    const seen = recorded(client);
    expect((await client.connect()).node).toBe('a');
    await client.join('acks');
    const ack = await client.send('acks', 'hello');
    expect(ack).toMatchObject({ type: 'ack', id: expect.stringMatching(/^\d+-\d+$/) });
    await waitFor(() => seen.messages.length === 1, { what: 'the message' });
    expect(seen.messages[0]).toMatchObject({ id: ack.id, text: 'hello', user: 'acker' });
    await expect(client.send('not-joined', 'x')).rejects.toMatchObject({ code: 'not_joined' });
    client.close();
  });

  it('reconnects after its gateway is killed and restarted, with nothing lost or repeated', async () => {
    const victim = await startGateway({ ...env(), NODE_ID: 'victim', PORT: String(await freeStablePort()) });
    await waitFor(async () => (await readyz(victim)) === 200, { what: 'victim ready' });
    const reader = new ChatClient({ url: victim.wsUrl, user: 'reader', webSocket, backoffMinMs: 100, backoffMaxMs: 500 });
    const seen = recorded(reader);
    await reader.connect();
    await reader.join('resilient');
    const writer = await TestClient.connect(b.wsUrl, 'writer');
    await writer.request({ type: 'join', room: 'resilient' });
    const acked: string[] = [];
    const post = async (n: number) => {
      for (let i = 0; i < n; i++) acked.push(((await writer.request({ type: 'send', room: 'resilient', text: `m${acked.length}` })) as AckFrame).id);
    };
    await post(20);
    await waitFor(() => seen.messages.length === 20, { what: 'first 20' });

    await victim.kill();
    await waitFor(() => reader.state === 'reconnecting', { what: 'reconnecting' });
    await post(30); // while the reader is away
    const queued = reader.send('resilient', 'written while away'); // queued until the rejoin
    const restarted = await startGateway({ ...env(), NODE_ID: 'victim', PORT: String(victim.port) });
    try {
      await waitFor(() => reader.state === 'connected', { what: 'connected again', timeoutMs: 15_000 });
      await post(10);
      const own = await queued;
      acked.push(own.id);
      acked.sort();
      await waitFor(() => seen.messages.length === 61, { what: 'all 61 messages' });
      const ids = seen.messages.map((m) => m.id);
      expect(new Set(ids).size).toBe(ids.length);
      expect(ids).toEqual([...acked].sort((x, y) => (x.length - y.length) || (x < y ? -1 : x > y ? 1 : 0)));
      expect(seen.states).toContain('reconnecting');
    } finally {
      reader.close();
      await writer.close();
      await restarted.stop();
    }
  });

  it('fails over to a second gateway when its first one goes away', async () => {
    const first = await startGateway({ ...env(), NODE_ID: 'first' });
    await waitFor(async () => (await readyz(first)) === 200, { what: 'first ready' });
    const client = new ChatClient({ url: [first.wsUrl, b.wsUrl], user: 'mover', webSocket, backoffMinMs: 50 });
    const seen = recorded(client);
    expect((await client.connect()).node).toBe('first');
    await client.join('moving');
    await client.send('moving', 'before');
    await first.stop(); // SIGTERM: 1001, reconnect at once, to the next URL
    await waitFor(() => client.welcome?.node === 'b' && client.state === 'connected', { what: 'on gateway b' });
    await client.send('moving', 'after');
    await waitFor(() => seen.messages.length === 2, { what: 'both messages' });
    expect(seen.messages.map((m) => m.text)).toEqual(['before', 'after']);
    client.close();
  });

  it('refuses sends clearly once closed, and bounds the queue while disconnected', async () => {
    const client = new ChatClient({ url: 'ws://127.0.0.1:9/ws', user: 'nowhere', webSocket, queueLimit: 2, backoffMinMs: 1000 });
    void client.connect().catch(() => {});
    await sleep(50);
    const queued = [client.send('r', '1'), client.send('r', '2')];
    await expect(client.send('r', '3')).rejects.toMatchObject({ code: 'queue_full' });
    client.close();
    for (const q of queued) await expect(q).rejects.toBeInstanceOf(ChatRequestError);
    await expect(client.send('r', '4')).rejects.toMatchObject({ code: 'disconnected' });
  });
});
