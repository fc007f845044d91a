import { spawnSync } from 'node:child_process';
import { TestClient, sleep, startRedisServer, startWebhookReceiver, waitFor, type ReceivedDelivery, type RedisServer, type WebhookReceiver } from '@chat/testkit';
import { Webhook } from 'standardwebhooks';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { GATEWAY_ENTRY, startCluster, startGateway, type Cluster, type GatewayProcess } from './helpers/gateways.js';

const PRESENCE_TTL_MS = 1000;
const RETRY_MS = 100;
/** A plain secret, as deployments set before Standard Webhooks: receivers use whsec_ and the base64 of its UTF-8 bytes. */
const SECRET = 'webhook-test-secret-0123456789';
const SECRET_AS_WHSEC = `whsec_${Buffer.from(SECRET, 'utf8').toString('base64')}`;
/** A Standard Webhooks secret, set as is on the gateways and in the receiver. */
const WHSEC = `whsec_${Buffer.from('0123456789abcdef0123456789abcdef').toString('base64')}`;

/** What a receiver built on the standardwebhooks library decides: whether `d` is genuine and recent under `secret`. */
function verifies(secret: string, d: Pick<ReceivedDelivery, 'body' | 'headers'>): boolean {
  const headers = Object.fromEntries(['webhook-id', 'webhook-timestamp', 'webhook-signature'].map((h) => [h, String(d.headers[h] ?? '')]));
  try {
    new Webhook(secret).verify(d.body, headers);
    return true;
  } catch {
    return false;
  }
}

/** One line per delivered event: what it says, not its id or time. */
const described = (d: ReceivedDelivery): string => `${d.event!.type} ${JSON.stringify(d.event!.data)}`;

describe('webhooks from three gateways', () => {
  let cluster: Cluster | undefined;
  let receiver: WebhookReceiver;
  const clients: TestClient[] = [];

  async function start(env: Record<string, string> = {}): Promise<Cluster> {
    receiver = await startWebhookReceiver();
    cluster = await startCluster(3, inject('redisUrl'), {
      PRESENCE_TTL_MS: String(PRESENCE_TTL_MS), WEBHOOK_URL: receiver.url, WEBHOOK_SECRET: SECRET,
      WEBHOOK_RETRY_MIN_MS: String(RETRY_MS), WEBHOOK_RETRY_MAX_MS: String(RETRY_MS), WEBHOOK_SWEEP_MS: '500', ...env,
    });
    return cluster;
  }
  const connect = async (gateway: number, user: string) => {
    const client = await TestClient.connect(cluster!.gateways[gateway]!.wsUrl, user);
    clients.push(client);
    return client;
  };

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.terminate()));
    await cluster?.stop();
    await receiver?.close();
  });

  it('tells of a user going offline once, when their last gateway dies, and retries a failing receiver with the same id', async () => {
    await start();
    const tabA = await connect(0, 'kim');
    await connect(1, 'kim');
    await waitFor(() => receiver.accepted().length === 1, { what: 'user.online' });
    expect(receiver.accepted().map(described)).toEqual(['user.online {"user":"kim"}']);

    await tabA.close();
    await sleep(PRESENCE_TTL_MS * 1.5); // a connection left on gateway 2: kim is online
    expect(receiver.deliveries).toHaveLength(1);

    let refusals = 3;
    // The receiver acknowledges only what it verifies, as a real one does.
    receiver.respond((d) => (refusals-- > 0 ? 500 : verifies(SECRET_AS_WHSEC, d) ? 200 : 401));
    const killedAt = Date.now();
    await cluster!.gateways[1]!.kill();
    await waitFor(() => receiver.accepted().length === 2, { timeoutMs: 10_000, what: 'user.offline delivered' });
    const attempts = receiver.deliveries.slice(1);
    expect(attempts.map((d) => d.status)).toEqual([500, 500, 500, 200]);
    expect(attempts.map(described)).toEqual(Array(4).fill('user.offline {"user":"kim"}'));
    expect(new Set(attempts.map((d) => d.event!.id)).size).toBe(1);
    for (const d of attempts) {
      expect(d.headers['webhook-id']).toBe(d.event!.id);
      expect(verifies(SECRET_AS_WHSEC, d)).toBe(true);
    }
    // Recorded when found dead, within the presence bound; delivered after the retries.
    const offline = attempts.at(-1)!;
    expect(offline.event!.ts - killedAt).toBeLessThanOrEqual(PRESENCE_TTL_MS * 1.25 + 250);
    expect(offline.at - killedAt).toBeLessThanOrEqual(PRESENCE_TTL_MS * 1.25 + 3 * RETRY_MS + 750);
    console.log(JSON.stringify({ presenceTtlMs: PRESENCE_TTL_MS, retryMs: RETRY_MS, offlineRecordedMs: offline.event!.ts - killedAt, offlineDeliveredMs: offline.at - killedAt }));

    expect(verifies(WHSEC, offline)).toBe(false);
    expect(verifies(SECRET_AS_WHSEC, { ...offline, body: offline.body.replace('"kim"', '"tim"') })).toBe(false);

    await sleep(1500); // sweeps and lease expiries later: nothing is delivered again
    expect(receiver.deliveries).toHaveLength(5);
  });

  it('fires every event type once per cluster, and room.vacated only once nobody is left anywhere', async () => {
    await start({ WEBHOOK_SECRET: WHSEC, WEBHOOK_EVENTS: 'user.online,user.offline,room.occupied,room.vacated,member.joined,member.left,message.created' });
    receiver.respond((d) => (verifies(WHSEC, d) ? 200 : 401));
    const ann = [await connect(0, 'ann'), await connect(1, 'ann')];
    const bob = await connect(1, 'bob');
    const cid = await connect(2, 'cid');
    for (const c of [...ann, bob, cid]) await c.request({ type: 'join', room: 'hall' });
    const ack = await bob.request({ type: 'send', room: 'hall', text: 'hello' });
    await ann[0]!.request({ type: 'leave', room: 'hall' });
    await bob.close();
    await cid.request({ type: 'leave', room: 'hall' });
    await waitFor(() => receiver.accepted().filter((d) => d.event!.type === 'member.left').length === 2, { what: 'bob and cid left' });
    await sleep(300);
    // ann's second connection is still in the room on gateway 2.
    expect(receiver.accepted().map((d) => d.event!.type)).not.toContain('room.vacated');
    await ann[1]!.close();
    await ann[0]!.close();
    await cid.close();
    await waitFor(() => receiver.accepted().filter((d) => d.event!.type === 'user.offline').length === 3, { what: 'everyone offline' });
    await sleep(700); // a sweep later: nothing more

    const delivered = receiver.accepted();
    // Every delivery verified under the whsec_ key the gateways were given, and under no other.
    expect(receiver.deliveries.filter((d) => d.status !== 200)).toEqual([]);
    expect(delivered.filter((d) => verifies(SECRET_AS_WHSEC, d))).toEqual([]);
    expect(new Set(delivered.map((d) => d.event!.id)).size).toBe(delivered.length);
    expect(delivered.map(described).sort()).toEqual([
      'member.joined {"room":"hall","user":"ann"}',
      'member.joined {"room":"hall","user":"bob"}',
      'member.joined {"room":"hall","user":"cid"}',
      'member.left {"room":"hall","user":"ann"}',
      'member.left {"room":"hall","user":"bob"}',
      'member.left {"room":"hall","user":"cid"}',
      `message.created {"room":"hall","message":{"type":"message","room":"hall","id":"${(ack as { id: string }).id}","user":"bob","text":"hello","ts":${(ack as { ts: number }).ts}}}`,
      'room.occupied {"room":"hall"}',
      'room.vacated {"room":"hall"}',
      'user.offline {"user":"ann"}',
      'user.offline {"user":"bob"}',
      'user.offline {"user":"cid"}',
      'user.online {"user":"ann"}',
      'user.online {"user":"bob"}',
      'user.online {"user":"cid"}',
    ]);
    // In order per room: occupied first, vacated last, after the last member left.
    const hall = delivered.filter((d) => d.event!.data.room === 'hall').map((d) => d.event!.type);
    expect(hall[0]).toBe('room.occupied');
    expect(hall.at(-1)).toBe('room.vacated');
    expect(hall.at(-2)).toBe('member.left');
    // In order per user: online before offline.
    for (const user of ['ann', 'bob', 'cid']) {
      expect(delivered.filter((d) => d.event!.data.user === user && !('room' in d.event!.data)).map((d) => d.event!.type)).toEqual(['user.online', 'user.offline']);
    }
  });

  it('announces a user who left while Redis was away, once it is back', async () => {
    const redis: RedisServer = await startRedisServer({ persistence: 'aof-always' });
    const gateways: GatewayProcess[] = [];
    try {
      receiver = await startWebhookReceiver();
      const env = {
        // A call waits 300 ms for Redis to come back, the outage lasts longer.
        REDIS_URL: redis.url, PRESENCE_TTL_MS: '3000', BROKER_TIMEOUT_MS: '300', WEBHOOK_URL: receiver.url, WEBHOOK_SECRET: SECRET,
        WEBHOOK_RETRY_MIN_MS: String(RETRY_MS), WEBHOOK_RETRY_MAX_MS: String(RETRY_MS), WEBHOOK_SWEEP_MS: '500',
      };
      gateways.push(await startGateway(env), await startGateway(env));
      const ann = await TestClient.connect(gateways[0]!.wsUrl, 'ann');
      const bob = await TestClient.connect(gateways[1]!.wsUrl, 'bob');
      clients.push(ann, bob);
      for (const c of [ann, bob]) await c.request({ type: 'join', room: 'r' });
      await waitFor(() => receiver.accepted().length === 5, { what: 'two online, occupied, two joined' });

      await redis.kill();
      await ann.close(); // neither her leave nor her disconnect can be written now
      await sleep(1000);
      await redis.start();
      await waitFor(() => receiver.accepted().some((d) => d.event!.type === 'user.offline'), { timeoutMs: 10_000, what: 'ann offline' });
      await sleep(1000);
      // As a receiver de-duplicates: an event delivered just before the kill may come again,
      // with its id, if its acknowledgement had not reached Redis (at least once).
      const before = new Set(receiver.accepted().slice(0, 5).map((d) => d.event!.id));
      const after = receiver.accepted().slice(5).filter((d) => !before.has(d.event!.id)).map(described).sort();
      expect(after).toEqual(['member.left {"room":"r","user":"ann"}', 'user.offline {"user":"ann"}']);
    } finally {
      await Promise.all(gateways.map((g) => g.stop()));
      await redis.cleanup();
    }
  });

  it('a gateway refuses to start with a WEBHOOK_SECRET that is no key, naming the variable', () => {
    for (const secret of ['whsec_short', `whsec_${Buffer.alloc(32).toString('base64url')}`, `whsec_${Buffer.alloc(16).toString('base64')}`, 'too-short']) {
      const run = spawnSync(process.execPath, [GATEWAY_ENTRY], {
        env: { PATH: process.env.PATH, DEV_IDENTITY: 'on', WEBHOOK_URL: 'http://127.0.0.1:9/hooks', WEBHOOK_SECRET: secret },
        encoding: 'utf8', timeout: 10_000,
      });
      expect(run.status, secret).toBe(2);
      expect(run.stderr).toMatch(/^configuration error: WEBHOOK_SECRET\b/m);
    }
  });
});
