import type { AckFrame, OpenedFrame } from '@chat/protocol';
import { TestClient, sleep, startRedisCluster, startWebhookReceiver, waitFor, type ReceivedDelivery, type RedisClusterHandle, type WebhookReceiver } from '@chat/testkit';
import { Webhook } from 'standardwebhooks';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { readyz, startCluster, startGateway, type GatewayProcess } from './helpers/gateways.js';

const WINDOW_MS = 1500;
const SECRET = `whsec_${Buffer.from('offline-notices-secret-0123456789').toString('base64')}`;

const unreadNotices = (receiver: WebhookReceiver) => receiver.accepted()
  .filter((d) => d.event?.type === 'member.unread')
  .map((d) => d.event!.data as { room: string; user: string; unread: number; read: string; last: { id: string; text: string }; with?: string });

function genuine(d: ReceivedDelivery): boolean {
  const headers = Object.fromEntries(['webhook-id', 'webhook-timestamp', 'webhook-signature'].map((h) => [h, String(d.headers[h] ?? '')]));
  new Webhook(SECRET).verify(d.body, headers);
  return true;
}

/** Three gateways delivering member.unread to a receiver; `gateways()` starts them on the given Redis. */
function offlineNoticeTests(name: string, gateways: () => Promise<GatewayProcess[]>, stopAll: () => Promise<void>) {
  describe(name, () => {
    let started: GatewayProcess[];
    let receiver: WebhookReceiver;
    const clients: TestClient[] = [];
    beforeAll(async () => {
      started = await gateways();
    }, 60_000);
    afterAll(stopAll);
    afterEach(async () => {
      await Promise.all(clients.splice(0).map((c) => c.close()));
    });
    const connect = async (i: number, user: string) => {
      const client = await TestClient.connect(started[i]!.wsUrl, user);
      clients.push(client);
      return client;
    };

    it('tells the application once per window of an offline member\'s unread messages, never the sender or a connected member', async () => {
      receiver = receiverOf(started);
      const alice = await connect(0, 'alice');
      const opened = await alice.request({ type: 'open', with: 'bob' }) as OpenedFrame;
      const group = await alice.request({ type: 'open', with: 'carol' }) as OpenedFrame;
      const carol = await connect(1, 'carol');
      for (const room of [opened.room, group.room]) await alice.request({ type: 'join', room });
      const sent: AckFrame[] = [];
      const first = Date.now();
      for (const text of ['one', 'two', 'three']) sent.push(await alice.request({ type: 'send', room: opened.room, text }) as AckFrame);
      const span = Date.now() - first;
      await alice.request({ type: 'send', room: group.room, text: 'carol is here' });
      await waitFor(() => unreadNotices(receiver).some((n) => n.unread === 3), { what: 'member.unread with all three', timeoutMs: WINDOW_MS * 5 });
      await sleep(500); // an event for alice or carol would be here by now
      const told = unreadNotices(receiver);
      expect(told.every((n) => n.room === opened.room && n.user === 'bob' && n.with === 'alice' && n.read === '0-0')).toBe(true);
      expect(told.at(-1)).toEqual({ room: opened.room, user: 'bob', unread: 3, read: '0-0', with: 'alice', last: expect.objectContaining({ id: sent[2]!.id, text: 'three' }) });
      expect(told.map((n) => n.unread)).toEqual([...new Set(told.map((n) => n.unread))].sort());
      // Coalesced: messages accepted within one window make one event (a loaded machine may spread them over two).
      if (span < WINDOW_MS) expect(told).toHaveLength(1);
      expect(receiver.accepted().filter((d) => d.event?.type === 'member.unread').every(genuine)).toBe(true);
      expect(carol.closeInfo).toBeUndefined();

      // Once bob is connected, nothing more is sent about him.
      const bob = await connect(2, 'bob');
      const before = unreadNotices(receiver).length;
      await alice.request({ type: 'send', room: opened.room, text: 'four' });
      await bob.until(() => bob.frames.some((f) => f.type === 'unread' && f.count === 4), { what: 'bob\'s live count' });
      await sleep(WINDOW_MS + 1000);
      expect(unreadNotices(receiver)).toHaveLength(before);
    });
  });
}

let receiverForSingle: WebhookReceiver;
let singleCluster: { stop(): Promise<void> } | undefined;
let receiverForCluster: WebhookReceiver;
let redisCluster: RedisClusterHandle | undefined;
let clusterGateways: GatewayProcess[] = [];
const receivers = new Map<GatewayProcess[], WebhookReceiver>();
const receiverOf = (gateways: GatewayProcess[]): WebhookReceiver => receivers.get(gateways)!;

const webhookEnv = (url: string) => ({
  WEBHOOK_URL: url, WEBHOOK_SECRET: SECRET, WEBHOOK_EVENTS: 'member.unread', WEBHOOK_UNREAD_WINDOW_MS: String(WINDOW_MS),
});

offlineNoticeTests('offline members told through the member.unread webhook, three gateways on one Redis', async () => {
  receiverForSingle = await startWebhookReceiver();
  const cluster = await startCluster(3, inject('redisUrl'), webhookEnv(receiverForSingle.url));
  singleCluster = cluster;
  receivers.set(cluster.gateways, receiverForSingle);
  return cluster.gateways;
}, async () => {
  await singleCluster?.stop();
  await receiverForSingle?.close();
});

offlineNoticeTests('offline members told through the member.unread webhook, on a Redis Cluster', async () => {
  receiverForCluster = await startWebhookReceiver();
  redisCluster = await startRedisCluster({ primaries: 3, replicasPerPrimary: 0 });
  clusterGateways = await Promise.all(['n1', 'n2', 'n3'].map((id) => startGateway({
    REDIS_URL: '', REDIS_CLUSTER_NODES: redisCluster!.seeds, REDIS_PREFIX: 'notices:', NODE_ID: id, ...webhookEnv(receiverForCluster.url),
  })));
  await waitFor(async () => (await Promise.all(clusterGateways.map(readyz))).every((s) => s === 200), { what: 'all ready', timeoutMs: 15_000 });
  receivers.set(clusterGateways, receiverForCluster);
  return clusterGateways;
}, async () => {
  await Promise.all(clusterGateways.map((g) => g.stop()));
  await redisCluster?.stop();
  await receiverForCluster?.close();
});
