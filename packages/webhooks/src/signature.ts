import { createHmac, timingSafeEqual } from 'node:crypto';

/** Headers of every delivery. */
export const WEBHOOK_HEADERS = {
  id: 'chat-webhook-id',
  timestamp: 'chat-webhook-timestamp',
  signature: 'chat-webhook-signature',
} as const;

/** `v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`: the timestamp is signed too, so a delivery cannot be replayed later. */
export function signWebhook(secret: string, timestamp: number, body: string): string {
  return `v1=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

export interface WebhookCheck {
  secret: string;
  /** The raw request body, exactly as received. */
  body: string;
  /** The `Chat-Webhook-Timestamp` header (seconds since the epoch). */
  timestamp: string | undefined;
  /** The `Chat-Webhook-Signature` header. */
  signature: string | undefined;
  /** Oldest timestamp accepted, in seconds before `nowSeconds`; 300 by default. */
  toleranceSeconds?: number;
  nowSeconds?: number;
}

/** For receivers: whether a delivery is genuine and recent. Compares in constant time. */
export function verifyWebhook(check: WebhookCheck): boolean {
  const { secret, body, timestamp, signature, toleranceSeconds = 300 } = check;
  const now = check.nowSeconds ?? Math.floor(Date.now() / 1000);
  const ts = Number(timestamp);
  if (timestamp === undefined || !/^\d+$/.test(timestamp) || Math.abs(now - ts) > toleranceSeconds || signature === undefined) return false;
  const expected = Buffer.from(signWebhook(secret, ts, body));
  const given = Buffer.from(signature);
  return given.length === expected.length && timingSafeEqual(given, expected);
}
