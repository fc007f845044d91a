import { Webhook } from 'standardwebhooks';

/**
 * Headers of every delivery, as Standard Webhooks (https://www.standardwebhooks.com/)
 * names them, so a receiver verifies with any of its libraries: the signature is
 * `v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`.
 */
export const WEBHOOK_HEADERS = {
  /** The event's id: the same on every retry, for de-duplication. */
  id: 'webhook-id',
  /** When this attempt was sent, in seconds since the epoch. */
  timestamp: 'webhook-timestamp',
  signature: 'webhook-signature',
} as const;

const PREFIX = 'whsec_';
/** The smallest key Standard Webhooks recommends (192 bits). */
const MIN_KEY_BYTES = 24;
/** The smallest plain secret, as WEBHOOK_SECRET accepted before `whsec_` keys. */
const MIN_PLAIN_LENGTH = 16;

/**
 * The HMAC key a configured secret stands for:
 * - `whsec_<base64>`, as Standard Webhooks writes secrets: the decoded bytes, at least 24;
 * - any other string (the plain secrets signed with before): its UTF-8 bytes, at least
 *   16 characters. Receivers verify with `whsec_` + the base64 of those bytes.
 * Throws an Error whose message reads after the variable's name.
 */
export function webhookKey(secret: string): Uint8Array {
  if (!secret.startsWith(PREFIX)) {
    if (secret.length < MIN_PLAIN_LENGTH) throw new Error(`must be whsec_<base64 of ${MIN_KEY_BYTES}+ random bytes>, or a plain string of at least ${MIN_PLAIN_LENGTH} characters`);
    return new TextEncoder().encode(secret);
  }
  const encoded = secret.slice(PREFIX.length);
  const key = Buffer.from(encoded, 'base64');
  // Node's decoder skips what is not base64; only the canonical, padded form decodes alike in every receiver's library.
  if (key.toString('base64') !== encoded) throw new Error('starts with whsec_ but the rest is not padded standard base64 (A-Z a-z 0-9 + /, = padding)');
  if (key.length < MIN_KEY_BYTES) throw new Error(`holds a key of ${key.length} bytes; Standard Webhooks asks for at least ${MIN_KEY_BYTES}: whsec_$(openssl rand -base64 32)`);
  return new Uint8Array(key);
}

/** Signs deliveries with one secret, decoded once (see webhookKey). */
export class WebhookSigner {
  readonly #webhook: Webhook;

  constructor(secret: string) {
    this.#webhook = new Webhook(webhookKey(secret), { format: 'raw' });
  }

  /** The headers of one attempt to deliver event `id` (its id stays across retries; the timestamp is the attempt's). */
  headers(id: string, body: string, at: Date = new Date()): Record<string, string> {
    return {
      [WEBHOOK_HEADERS.id]: id,
      [WEBHOOK_HEADERS.timestamp]: String(Math.floor(at.getTime() / 1000)),
      [WEBHOOK_HEADERS.signature]: this.#webhook.sign(id, at, body),
    };
  }
}
