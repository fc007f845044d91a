import { afterEach, describe, expect, it } from 'vitest';
import { CLUSTER_EVENT_TYPES, MemoryBroker, MemoryEventFeed, MemoryHub } from '@chat/broker';
import { startWebhookReceiver, waitFor, type WebhookReceiver } from '@chat/testkit';
import { createHmac } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { WEBHOOK_HEADERS, WebhookDispatcher, WebhookSigner, webhookKey, type WebhookObserver, type WebhookSettings } from '../src/index.js';
import type { ReceivedDelivery } from '@chat/testkit';

const silent = { debug() {}, info() {}, warn() {}, error() {} };
/** A Standard Webhooks secret: whsec_ and the base64 of 32 bytes. */
const SECRET = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;
const OTHER_SECRET = `whsec_${Buffer.alloc(32, 8).toString('base64')}`;

/** The three Standard Webhooks headers of a delivery, as a receiver hands them to Webhook.verify. */
const signed = (d: Pick<ReceivedDelivery, 'headers'>): Record<string, string> =>
  Object.fromEntries(Object.values(WEBHOOK_HEADERS).map((name) => [name, String(d.headers[name])]));

/** Whether the standardwebhooks library accepts `body` with these headers under `secret`. */
function verifies(secret: string, body: string, headers: Record<string, string>): boolean {
  try {
    new Webhook(secret).verify(body, headers);
    return true;
  } catch {
    return false;
  }
}

function settings(url: string, overrides: Partial<WebhookSettings> = {}): WebhookSettings {
  return {
    url, secret: SECRET, events: CLUSTER_EVENT_TYPES, timeoutMs: 1000, retryMinMs: 20, retryMaxMs: 100,
    giveUpAfterMs: 60_000, concurrency: 4, sweepMs: 200, leaseMs: 1000, backlogLimit: 1000, ...overrides,
  };
}

function counting(): WebhookObserver & { counts: Record<string, number> } {
  const counts = { delivered: 0, failed: 0, retried: 0, dropped: 0 };
  return {
    counts,
    delivered: () => void counts.delivered++,
    failed: () => void counts.failed++,
    retried: () => void counts.retried++,
    dropped: () => void counts.dropped++,
    backlog: () => {},
  };
}

describe('WebhookDispatcher', () => {
  let receiver: WebhookReceiver;
  const stops: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const stop of stops.splice(0)) await stop();
    await receiver?.close();
  });

  async function cluster(overrides: Partial<WebhookSettings> = {}, dispatchers = 1) {
    receiver = await startWebhookReceiver();
    const hub = new MemoryHub();
    const node = new MemoryBroker({ historySize: 10, hub, events: { types: CLUSTER_EVENT_TYPES, backlogLimit: 1000 } });
    node.start({ onRoomMessage() {}, onStatus() {}, onRoomLoss() {}, onPresence() {}, onRoomEvent() {}, onUserFrame() {}, onUserCommand() {}, onNodeMessage() {} });
    await Promise.resolve();
    const observer = counting();
    for (let i = 0; i < dispatchers; i++) {
      const dispatcher = new WebhookDispatcher({ feed: new MemoryEventFeed(hub.events), settings: settings(receiver.url, overrides), owner: `d${i}`, log: silent, observer });
      dispatcher.start();
      stops.push(() => dispatcher.stop());
    }
    return { node, observer, hub };
  }

  it('posts each event once, in order, each verified by the standardwebhooks library', async () => {
    const { node } = await cluster({}, 3);
    for (let i = 0; i < 20; i++) await node.presence.setUserConnections(`u${i}`, 1);
    await waitFor(() => receiver.accepted().length === 20, { timeoutMs: 5000, what: '20 deliveries' });
    await new Promise((r) => setTimeout(r, 300)); // a sweep later, nothing is posted again
    const delivered = receiver.deliveries;
    expect(delivered.map((d) => d.event?.data.user)).toEqual(Array.from({ length: 20 }, (_, i) => `u${i}`));
    for (const d of delivered) {
      expect(d.headers['webhook-id']).toBe(d.event?.id);
      expect(d.headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/);
      expect(verifies(SECRET, d.body, signed(d))).toBe(true);
      expect(verifies(OTHER_SECRET, d.body, signed(d))).toBe(false);
      expect(verifies(SECRET, d.body.replace(`"user":"u`, `"user":"v`), signed(d))).toBe(false);
      expect(verifies(SECRET, d.body, { ...signed(d), 'webhook-id': `${d.event?.id}x` })).toBe(false);
    }
  });

  it('verifies under a plain secret as whsec_ and the base64 of its UTF-8 bytes, as documented', async () => {
    const plain = 'pässwörd-of-before-0123';
    const { node } = await cluster({ secret: plain });
    await node.presence.setUserConnections('ünïcode', 1);
    await waitFor(() => receiver.accepted().length === 1, { timeoutMs: 5000, what: 'one delivery' });
    const [d] = receiver.accepted();
    expect(verifies(`whsec_${Buffer.from(plain, 'utf8').toString('base64')}`, d!.body, signed(d!))).toBe(true);
    // Not the library's own raw-string mode, which takes one byte per UTF-16 unit.
    expect(verifies(`whsec_${Buffer.from(plain, 'latin1').toString('base64')}`, d!.body, signed(d!))).toBe(false);
  });

  it('retries a failing receiver with backoff, with the same id, and delivers the next event only after it', async () => {
    const { node, observer } = await cluster({ retryMinMs: 50, retryMaxMs: 1000 });
    let refusals = 3;
    receiver.respond(() => (refusals-- > 0 ? 500 : 200));
    await node.presence.setUserConnections('first', 1);
    await node.presence.setUserConnections('second', 1);
    // The receiver records a delivery before its 200 reaches the dispatcher: wait for both sides.
    await waitFor(() => receiver.accepted().length === 2 && observer.counts.delivered === 2, { timeoutMs: 5000, what: 'both delivered' });
    const [a, b, c, d, e] = receiver.deliveries;
    expect([a, b, c, d, e].map((x) => x?.status)).toEqual([500, 500, 500, 200, 200]);
    expect(new Set([a, b, c, d].map((x) => x?.event?.id)).size).toBe(1);
    // Every attempt is signed anew, under the event's id: a receiver de-duplicates on webhook-id.
    for (const x of [a, b, c, d]) {
      expect(x!.headers['webhook-id']).toBe(a!.event!.id);
      expect(verifies(SECRET, x!.body, signed(x!))).toBe(true);
    }
    expect(e?.event?.data.user).toBe('second');
    // Backoff: 50, 100, 200 ms between the attempts.
    expect(b!.at - a!.at).toBeGreaterThanOrEqual(45);
    expect(d!.at - c!.at).toBeGreaterThanOrEqual(190);
    expect(observer.counts).toMatchObject({ delivered: 2, failed: 3, retried: 3, dropped: 0 });
  });

  it('treats an answer slower than the timeout as a failure', async () => {
    const { node, observer } = await cluster({ timeoutMs: 100 });
    let slow = true;
    receiver.respond(async () => {
      if (slow) {
        slow = false;
        await new Promise((r) => setTimeout(r, 300));
      }
      return 204;
    });
    await node.presence.setUserConnections('late', 1);
    await waitFor(() => observer.counts.delivered === 1, { timeoutMs: 5000, what: 'delivered on the retry' });
    expect(observer.counts.failed).toBe(1);
  });

  it('drops an event still failing past the give-up age, counted, and goes on', async () => {
    const { node, observer } = await cluster({ giveUpAfterMs: 150, retryMinMs: 40 });
    receiver.respond((d) => (d.event?.data.user === 'doomed' ? 503 : 200));
    await node.presence.setUserConnections('doomed', 1);
    await node.presence.setUserConnections('fine', 1);
    await waitFor(() => receiver.accepted().length === 1, { timeoutMs: 5000, what: 'the next event' });
    expect(observer.counts.dropped).toBe(1);
    expect(receiver.accepted()[0]!.event?.data.user).toBe('fine');
  });

  it('signs as Standard Webhooks specifies: the spec library test vector, and HMAC-SHA256 of "<id>.<timestamp>.<body>" in base64', () => {
    const at = new Date(1_614_265_330 * 1000);
    const headers = new WebhookSigner('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw').headers('msg_p5jXN8AQM9LWM0D4loKWxJek', '{"test": 2432232314}', at);
    expect(headers).toEqual({
      'webhook-id': 'msg_p5jXN8AQM9LWM0D4loKWxJek',
      'webhook-timestamp': '1614265330',
      'webhook-signature': 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
    });
    // A plain secret's key is its UTF-8 bytes: what `openssl dgst -sha256 -hmac "$WEBHOOK_SECRET" -binary | base64` gives.
    const plain = new WebhookSigner('key-of-sixteen-chars').headers('e.1', '{"a":1}', at)['webhook-signature'];
    expect(plain).toBe(`v1,${createHmac('sha256', 'key-of-sixteen-chars').update('e.1.1614265330.{"a":1}').digest('base64')}`);
  });

  it('refuses a delivery older than five minutes (the library tolerance), so a captured one cannot be replayed', () => {
    const stale = new WebhookSigner(SECRET).headers('e.1', '{}', new Date(Date.now() - 301_000));
    const fresh = new WebhookSigner(SECRET).headers('e.1', '{}', new Date(Date.now() - 290_000));
    expect(verifies(SECRET, '{}', stale)).toBe(false);
    expect(verifies(SECRET, '{}', fresh)).toBe(true);
  });

  it('takes whsec_ keys of 24+ bytes in padded base64 and plain secrets of 16+ characters, and refuses the rest', () => {
    expect(webhookKey(SECRET)).toEqual(new Uint8Array(32).fill(7));
    expect(webhookKey('sixteen-chars-ok')).toEqual(new TextEncoder().encode('sixteen-chars-ok'));
    expect(() => webhookKey('fifteen-chars-n')).toThrow(/at least 16 characters/);
    expect(() => webhookKey(`whsec_${Buffer.alloc(16).toString('base64')}`)).toThrow(/16 bytes.*at least 24/);
    expect(() => webhookKey(`whsec_${Buffer.alloc(32).toString('base64').replace(/=+$/, '')}`)).toThrow(/padded standard base64/);
    expect(() => webhookKey(`whsec_${Buffer.alloc(32, 0xfb).toString('base64url')}`)).toThrow(/padded standard base64/);
    expect(() => new WebhookDispatcher({ feed: new MemoryEventFeed(new MemoryHub().events), settings: settings('http://127.0.0.1:1/', { secret: 'whsec_short' }), owner: 'd', log: silent, observer: counting() })).toThrow(/base64/);
  });
});
