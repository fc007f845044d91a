import { createHash, timingSafeEqual } from 'node:crypto';
import type { ErrorCode } from '@chat/protocol';
import type { HttpRequest, TemplatedApp } from 'uWebSockets.js';
import { toChatError } from '../errors.js';
import { bearerToken, watchAbort } from '../http/request.js';
import type { Logger } from '../logger.js';
import { TokenBucket } from '../token-bucket.js';
import { conversationRoutes } from './conversations-api.js';
import { moderationRoutes } from './moderation-api.js';
import { apiError, readBody, send, type ApiReply } from './http.js';
import { roomRoutes } from './rooms-api.js';
import type { ApiDeps } from './routes.js';
import { userRoutes } from './users-api.js';

/**
 * The server API under /api, for trusted backends: the key in
 * `Authorization: Bearer <key>` or `X-API-Key`, a token bucket per key, JSON
 * in and out, every error `{"code","message"}` with a 4xx or 5xx. Without
 * API_KEY every /api route answers 404.
 */
export function registerServerApi(app: TemplatedApp, deps: ApiDeps): void {
  const { config, log } = deps;
  if (config.apiKey === undefined) {
    app.any('/api/*', (res) => send(res, { value: false }, apiError(404, 'bad_request', 'the server API is off: set API_KEY')));
    return;
  }
  const expected = digest(config.apiKey);
  // One key today; a bucket per key so a second key gets its own.
  const buckets = new Map<string, TokenBucket>();
  const bucketOf = (key: string): TokenBucket => {
    let bucket = buckets.get(key);
    if (bucket === undefined) buckets.set(key, (bucket = new TokenBucket(config.apiRateLimitBurst, config.apiRateLimitPerSec, Date.now())));
    return bucket;
  };
  const routes = [...roomRoutes(deps), ...userRoutes(deps), ...conversationRoutes(deps), ...moderationRoutes(deps)];
  for (const route of routes) {
    app[route.method](route.path, (res, req) => {
      const aborted = watchAbort(res);
      const presented = presentedKey(req);
      const input = { params: decodeParams(req, route.path), query: new URLSearchParams(req.getQuery() ?? ''), headers: readHeaders(req, route.headers) };
      const answer = (reply: ApiReply): void => {
        deps.metrics.apiRequests.incLabel(`${reply.status}`);
        send(res, aborted, reply);
      };
      // Compare digests: equal lengths, and no timing hint about the key.
      if (!timingSafeEqual(digest(presented), expected)) return answer(apiError(401, 'forbidden', 'missing or wrong API key'));
      if (!bucketOf(presented).take(Date.now())) return answer(apiError(429, 'rate_limited', 'too many requests for this API key', { 'Retry-After': '1' }));
      const run = (body: Buffer | undefined): void => {
        if (input.params.includes('')) return answer(apiError(400, 'bad_request', 'a path segment is not valid percent-encoding'));
        route.handle({ ...input, body }).then(answer, (err: unknown) => answer(failure(err, log, route.path)));
      };
      if (!route.body) return run(undefined);
      readBody(res, config.maxFrameBytes, (body) => {
        if (body === null) return answer(apiError(413, 'payload_too_large', `body exceeds ${config.maxFrameBytes} bytes`));
        run(body);
      });
    });
  }
  const methodsOf = new Map<string, string[]>();
  for (const route of routes) methodsOf.set(route.path, [...(methodsOf.get(route.path) ?? []), route.method === 'del' ? 'DELETE' : route.method.toUpperCase()]);
  for (const [path, methods] of methodsOf) {
    app.any(path, (res, req) => {
      const method = req.getMethod().toUpperCase();
      send(res, { value: false }, apiError(405, 'bad_request', `${method} is not allowed here; allowed: ${methods.join(', ')}`, { Allow: methods.join(', ') }));
    });
  }
  app.any('/api/*', (res, req) => send(res, { value: false }, apiError(404, 'bad_request', `no such route: ${req.getMethod().toUpperCase()} ${req.getUrl()}`)));
}

/** The HTTP status of a refusal a route did not answer itself; anything else is 500. */
const STATUS_OF: Partial<Record<ErrorCode, number>> = {
  bad_request: 400, forbidden: 403, not_found: 404, gone: 410, banned: 403, muted: 403, payload_too_large: 413, rate_limited: 429, unavailable: 503,
};

function failure(err: unknown, log: Logger, path: string): ApiReply {
  const error = toChatError(err);
  if (error.code === 'internal') log.error({ err, path }, 'server API request failed');
  return apiError(STATUS_OF[error.code] ?? 500, error.code, error.message);
}

function presentedKey(req: HttpRequest): string {
  return bearerToken(req.getHeader('authorization')) ?? req.getHeader('x-api-key');
}

/** Path parameters, percent-decoded; '' for one that does not decode. */
function decodeParams(req: HttpRequest, path: string): string[] {
  const count = path.split('/').filter((segment) => segment.startsWith(':')).length;
  return Array.from({ length: count }, (_, i) => {
    try {
      return decodeURIComponent(req.getParameter(i) ?? '');
    } catch {
      return '';
    }
  });
}

function readHeaders(req: HttpRequest, names: readonly string[] = []): Record<string, string> {
  return Object.fromEntries(names.map((name) => [name, req.getHeader(name)]));
}

function digest(key: string): Buffer {
  return createHash('sha256').update(key).digest();
}
