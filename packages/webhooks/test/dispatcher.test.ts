import { afterEach, describe, expect, it } from 'vitest';
import { CLUSTER_EVENT_TYPES, MemoryBroker, MemoryEventFeed, MemoryHub } from '@chat/broker';
import { startWebhookReceiver, waitFor, type WebhookReceiver } from '@chat/testkit';
import { WEBHOOK_HEADERS, WebhookDispatcher, signWebhook, verifyWebhook, type WebhookObserver, type WebhookSettings } from '../src/index.js';

const silent = { debug() {}, info() {}, warn() {}, error() {} };
const SECRET = 'test-secret-0123456789';

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

  it('posts each event once, in order, signed over its timestamp and body', async () => {
    const { node } = await cluster({}, 3);
    for (let i = 0; i < 20; i++) await node.presence.setUserConnections(`u${i}`, 1);
    await waitFor(() => receiver.accepted().length === 20, { timeoutMs: 5000, what: '20 deliveries' });
    await new Promise((r) => setTimeout(r, 300)); // a sweep later, nothing is posted again
    const delivered = receiver.deliveries;
    expect(delivered.map((d) => d.event?.data.user)).toEqual(Array.from({ length: 20 }, (_, i) => `u${i}`));
    for (const d of delivered) {
      expect(d.headers[WEBHOOK_HEADERS.id]).toBe(d.event?.id);
      const check = { body: d.body, timestamp: d.headers[WEBHOOK_HEADERS.timestamp] as string, signature: d.headers[WEBHOOK_HEADERS.signature] as string };
      expect(verifyWebhook({ secret: SECRET, ...check })).toBe(true);
      expect(verifyWebhook({ secret: 'another-secret-0123456789', ...check })).toBe(false);
      expect(verifyWebhook({ secret: SECRET, ...check, body: d.body.replace('u', 'v') })).toBe(false);
    }
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

  it('signs with HMAC-SHA256 of "<timestamp>.<body>", as documented, and refuses a stale timestamp', () => {
    // echo -n '1700000000.{"a":1}' | openssl dgst -sha256 -hmac key
    const signature = signWebhook('key', 1_700_000_000, '{"a":1}');
    expect(signature).toBe('v1=a438e398bfafc57e4396bb7fc2304422f0f768e965d073ca313cb52e22e6ad03');
    const check = { secret: 'key', body: '{"a":1}', timestamp: '1700000000', signature };
    expect(verifyWebhook({ ...check, nowSeconds: 1_700_000_000 + 300 })).toBe(true);
    expect(verifyWebhook({ ...check, nowSeconds: 1_700_000_000 + 301 })).toBe(false);
  });
});
