import { spawnSync } from 'node:child_process';
import { ChatClient, type WebSocketLike } from '@chat/client';
import { compareIds, type AckFrame, type MessageFrame } from '@chat/protocol';
import { freeStablePort, sleep, startRedisServer, TestClient, type RedisServer, uniquePrefix, waitFor } from '@chat/testkit';
import WebSocket from 'ws';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { readyz, startGateway, type GatewayProcess } from './helpers/gateways.js';
import { scrape } from './helpers/metrics.js';

/*
 * The client library's promise: `await send()` resolves once, with the one id
 * the message has, through gateway crashes, rolling restarts and a Redis that
 * stops answering; every member sees each message once, in order.
 */
const webSocket = (url: string) => new WebSocket(url) as unknown as WebSocketLike;
const FAST = { RATE_LIMIT_PER_SEC: '1000', RATE_LIMIT_BURST: '1000', JOIN_HISTORY: '1000', HISTORY_SIZE: '5000' };

/** Every message a ChatClient hands to the application. */
function recording(client: ChatClient): MessageFrame[] {
  const seen: MessageFrame[] = [];
  client.on('message', (m) => seen.push(m));
  return seen;
}

function expectOnceInOrder(ids: string[], label: string): void {
  expect(new Set(ids).size, `${label}: no duplicate`).toBe(ids.length);
  expect([...ids].sort(compareIds), `${label}: in id order`).toEqual(ids);
}

/** Sends `count` messages, one every `everyMs`, without waiting for acks; resolves with every send's outcome. */
async function burst(client: ChatClient, room: string, count: number, everyMs: number, label: string) {
  const sends: Array<Promise<AckFrame | Error>> = [];
  for (let i = 0; i < count; i++) {
    sends.push(client.send(room, `${label} ${i}`).catch((err: Error) => err));
    await sleep(everyMs);
  }
  return Promise.all(sends);
}

describe('the client library resends instead of failing', () => {
  const gateways: GatewayProcess[] = [];
  const clients: ChatClient[] = [];
  const testClients: TestClient[] = [];
  let redis: RedisServer | undefined;
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await Promise.all(testClients.splice(0).map((c) => c.close()));
    await Promise.all(gateways.splice(0).map((g) => g.stop()));
    await redis?.cleanup();
    redis = undefined;
  });

  const gateway = async (env: Record<string, string>) => {
    const g = await startGateway({ ...FAST, ...env });
    gateways.push(g);
    await waitFor(async () => (await readyz(g)) === 200, { what: `${g.nodeId} ready` });
    return g;
  };
  const library = (url: string | string[], user: string, queueLimit = 1000) => {
    const client = new ChatClient({ url, user, webSocket, queueLimit, backoffMinMs: 50, backoffMaxMs: 500 });
    clients.push(client);
    return client;
  };

  it('a gateway SIGKILLed and restarted in a burst of 400 sends: every send is acked, and a reader sees each once, in order', async () => {
    const prefix = uniquePrefix('resend');
    const env = { REDIS_URL: inject('redisUrl'), REDIS_PREFIX: prefix };
    const port = await freeStablePort();
    const victim = await gateway({ ...env, NODE_ID: 'victim', PORT: String(port) });
    const other = await gateway({ ...env, NODE_ID: 'other' });
    const reader = await TestClient.connect(other.wsUrl, 'reader');
    testClients.push(reader);
    await reader.request({ type: 'join', room: 'burst' });
    const writer = library(victim.wsUrl, 'writer');
    await writer.connect();
    await writer.join('burst');

    const sending = burst(writer, 'burst', 400, 6, 'm');
    await waitFor(() => reader.messages('burst').length >= 100, { what: '100 messages before the kill' });
    await victim.kill();
    gateways.splice(gateways.indexOf(victim), 1);
    await gateway({ ...env, NODE_ID: 'victim', PORT: String(port) });
    const outcomes = await sending;

    expect(outcomes.filter((o) => o instanceof Error)).toEqual([]);
    const acked = (outcomes as AckFrame[]).map((a) => a.id);
    expect(new Set(acked).size).toBe(400);
    await reader.until(() => reader.messages('burst').length >= 400, { what: 'all 400 at the reader', timeoutMs: 10_000 });
    await sleep(200);
    const got = reader.messages('burst');
    expectOnceInOrder(got.map((m) => m.id), 'reader');
    expect(new Set(got.map((m) => m.text))).toEqual(new Set(Array.from({ length: 400 }, (_, i) => `m ${i}`)));
    expect(got.map((m) => m.id).sort(compareIds)).toEqual([...acked].sort(compareIds));
  }, 60_000);

  it('a rolling restart of three gateways, three times, under 300 members in 10 rooms: every send acked, every member has each once, in order', async () => {
    const prefix = uniquePrefix('rolling');
    const env = { REDIS_URL: inject('redisUrl'), REDIS_PREFIX: prefix };
    const ports = [await freeStablePort(), await freeStablePort(), await freeStablePort()];
    const start = (i: number) => gateway({ ...env, NODE_ID: `gw-${i + 1}`, PORT: String(ports[i]) });
    const nodes = [await start(0), await start(1), await start(2)];
    const urls = ports.map((p) => `ws://127.0.0.1:${p}/ws`);
    const rooms = Array.from({ length: 10 }, (_, i) => `rolling-${i}`);
    // Each member starts on its own gateway and knows all three.
    const members = await Promise.all(Array.from({ length: 300 }, async (_, i) => {
      const client = library([...urls.slice(i % 3), ...urls.slice(0, i % 3)], `member${i}`);
      const seen = recording(client);
      await client.connect();
      await client.join(rooms[i % rooms.length]!);
      return { client, seen, room: rooms[i % rooms.length]! };
    }));

    const acks = new Map<string, Array<Promise<AckFrame | Error>>>(rooms.map((r) => [r, []]));
    let sending = true;
    const senders = rooms.map(async (room, r) => {
      const sender = members[r]!; // member r is in room r
      for (let n = 0; sending; n++) {
        acks.get(room)!.push(sender.client.send(room, `${room} ${n}`).catch((err: Error) => err));
        await sleep(50);
      }
    });
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 3; i++) {
        await sleep(400);
        await nodes[i]!.stop(); // SIGTERM: its clients are closed 1001 and move to the others
        gateways.splice(gateways.indexOf(nodes[i]!), 1);
        nodes[i] = await start(i);
      }
    }
    await sleep(400);
    sending = false;
    await Promise.all(senders);

    for (const room of rooms) {
      const outcomes = await Promise.all(acks.get(room)!);
      expect(outcomes.filter((o) => o instanceof Error), room).toEqual([]);
      const acked = (outcomes as AckFrame[]).map((a) => a.id).sort(compareIds);
      for (const m of members.filter((x) => x.room === room)) {
        await waitFor(() => m.seen.length >= acked.length, { what: `${room} complete for a member`, timeoutMs: 15_000 });
        const ids = m.seen.map((s) => s.id);
        expectOnceInOrder(ids, room);
        expect(ids.filter((id) => compareIds(id, acked[0]!) >= 0)).toEqual(acked);
      }
    }
  }, 120_000);

  const canBlackHole = process.getuid?.() === 0 && spawnSync('iptables', ['-L', 'INPUT', '-n'], { stdio: 'ignore' }).status === 0;
  it.skipIf(!canBlackHole)('Redis black-holed mid-burst longer than BROKER_TIMEOUT_MS, then healed: every send resolves once, nothing twice', async () => {
    redis = await startRedisServer();
    const port = new URL(redis.url).port;
    const env = { REDIS_URL: redis.url, BROKER_TIMEOUT_MS: '1000', REDIS_PROBE_INTERVAL_MS: '200', REDIS_PROBE_TIMEOUT_MS: '1000' };
    const writerGateway = await gateway({ ...env, NODE_ID: 'writes' });
    const readerGateway = await gateway({ ...env, NODE_ID: 'reads' });
    const reader = library(readerGateway.wsUrl, 'reader');
    const seen = recording(reader);
    await reader.connect();
    await reader.join('hole');
    const writer = library(writerGateway.wsUrl, 'writer');
    await writer.connect();
    await writer.join('hole');

    // Packets to and from Redis's port vanish: no reset, the connections stay open and go quiet.
    const rules = [['--dport', port], ['--sport', port]].map(([flag, value]) => ['INPUT', '-i', 'lo', '-p', 'tcp', flag!, value!, '-j', 'DROP']);
    const sending = burst(writer, 'hole', 200, 10, 'h');
    try {
      await sleep(500);
      for (const rule of rules) expect(spawnSync('iptables', ['-I', ...rule]).status).toBe(0);
      await sleep(2500);
    } finally {
      for (const rule of rules) spawnSync('iptables', ['-D', ...rule]);
    }
    const outcomes = await sending;

    expect(outcomes.filter((o) => o instanceof Error)).toEqual([]);
    const acked = (outcomes as AckFrame[]).map((a) => a.id);
    expect(new Set(acked).size).toBe(200);
    await waitFor(() => seen.length >= 200, { what: 'all 200 at the reader', timeoutMs: 20_000 });
    await sleep(300);
    expectOnceInOrder(seen.map((m) => m.id), 'reader');
    expect(seen.map((m) => m.text).sort()).toEqual(Array.from({ length: 200 }, (_, i) => `h ${i}`).sort());
    // Some sends were answered unavailable while Redis, reached late, stored them: their retries were repeats.
    const metrics = await scrape(`${writerGateway.httpUrl}/metrics`);
    expect(metrics.get('chat_repeated_sends_total')).toBeGreaterThan(0);
  }, 60_000);
});
