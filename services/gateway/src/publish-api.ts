import { createHash, timingSafeEqual } from 'node:crypto';
import type { Broker } from '@chat/broker';
import { isValidName } from '@chat/protocol';
import type { HttpResponse, TemplatedApp } from 'uWebSockets.js';
import type { Config } from './config.js';
import { toChatError } from './errors.js';
import type { InFlight } from './in-flight.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';
import { postRoomMessage } from './room-messages.js';
import type { RoomRegistry } from './rooms/registry.js';

export interface PublishApiDeps {
  config: Config;
  broker: Broker;
  rooms: RoomRegistry;
  inFlight: InFlight;
  metrics: Metrics;
  log: Logger;
}

/**
 * POST /api/rooms/:room/messages — for trusted backends, with the API key in
 * `Authorization: Bearer <key>` or `X-API-Key`. Body: {"user": U, "text": T}.
 * Same validation, ordering and ids as a client's `send`. 201 {"id","ts"};
 * with an `Idempotency-Key` header used before (same user and room), 200 and the
 * first message's {"id","ts"}; errors as {"code","message"} with 400/401/413/503.
 */
export function registerPublishApi(app: TemplatedApp, deps: PublishApiDeps): void {
  const { config } = deps;
  if (config.apiKey === undefined) return; // off: the route falls through to 404
  const expected = digest(config.apiKey);
  app.post('/api/rooms/:room/messages', (res, req) => {
    const room = req.getParameter(0);
    const idempotencyKey = req.getHeader('idempotency-key');
    const authorization = req.getHeader('authorization');
    const presented = authorization.startsWith('Bearer ') ? authorization.slice(7).trim() : req.getHeader('x-api-key');
    const aborted = { value: false };
    res.onAborted(() => {
      aborted.value = true;
    });
    // Compare digests: equal lengths, and no timing hint about the key.
    if (!timingSafeEqual(digest(presented), expected)) return reply(res, aborted, '401 Unauthorized', { code: 'forbidden', message: 'missing or wrong API key' });
    readBody(res, config.maxFrameBytes, (body) => {
      if (body === null) return reply(res, aborted, '413 Payload Too Large', { code: 'payload_too_large', message: `body exceeds ${config.maxFrameBytes} bytes` });
      void publish(deps, room, body, idempotencyKey === '' ? undefined : idempotencyKey).then(([status, payload]) => reply(res, aborted, status, payload));
    });
  });
}

async function publish(deps: PublishApiDeps, room: string, body: Buffer, key: string | undefined): Promise<[string, object]> {
  let input: { user?: unknown; text?: unknown };
  try {
    input = JSON.parse(body.toString('utf8')) as typeof input;
  } catch {
    return ['400 Bad Request', { code: 'bad_request', message: 'body is not JSON' }];
  }
  const user = input.user ?? 'system';
  if (!isValidName(room)) return ['400 Bad Request', { code: 'bad_request', message: 'room must match ^[A-Za-z0-9_.:-]{1,64}$' }];
  if (!isValidName(user)) return ['400 Bad Request', { code: 'bad_request', message: '"user" must match ^[A-Za-z0-9_.:-]{1,64}$' }];
  if (typeof input.text !== 'string') return ['400 Bad Request', { code: 'bad_request', message: '"text" must be a string' }];
  if (input.text.length > deps.config.maxTextLength) {
    return ['413 Payload Too Large', { code: 'payload_too_large', message: `"text" exceeds ${deps.config.maxTextLength} characters` }];
  }
  if (key !== undefined && !isValidName(key)) {
    return ['400 Bad Request', { code: 'bad_request', message: 'Idempotency-Key must match ^[A-Za-z0-9_.:-]{1,64}$' }];
  }
  try {
    const { id, ts, repeat } = await postRoomMessage(deps, { room, user, text: input.text, key });
    return [repeat ? '200 OK' : '201 Created', { id, ts }];
  } catch (err) {
    const error = toChatError(err);
    return [error.code === 'unavailable' ? '503 Service Unavailable' : '500 Internal Server Error', { code: error.code, message: error.message }];
  }
}

/** Collects the body, or hands null once it exceeds `limit`. */
function readBody(res: HttpResponse, limit: number, done: (body: Buffer | null) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let over = false;
  res.onData((chunk, isLast) => {
    size += chunk.byteLength;
    if (size > limit) over = true;
    else chunks.push(Buffer.from(chunk.slice(0))); // uWS reuses the chunk's memory
    if (isLast) done(over ? null : Buffer.concat(chunks));
  });
}

function reply(res: HttpResponse, aborted: { value: boolean }, status: string, payload: object): void {
  if (aborted.value) return;
  res.cork(() => res.writeStatus(status).writeHeader('Content-Type', 'application/json').end(JSON.stringify(payload)));
}

function digest(key: string): Buffer {
  return createHash('sha256').update(key).digest();
}
