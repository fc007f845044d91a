import type { HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { readBody, send, type ApiReply } from '../../api/http.js';
import { bearerToken, watchAbort } from '../../http/request.js';
import type { Logger } from '../../logger.js';
import type { Metrics, SsePostResult } from '../../metrics.js';
import type { Cors } from '../cors.js';
import { admit, peerAddress, type AdmissionContext } from '../admission.js';
import type { Connections } from '../connections.js';
import { HEARTBEAT } from './events.js';
import type { LocalStreams } from './local-streams.js';
import type { PostRelay } from './post-relay.js';
import { EventStreamSink } from './stream-sink.js';

/** The contract's bounds on one POST. */
const MAX_FRAMES_PER_POST = 100;
/** A POST may carry several frames; four of the largest, or 64 KiB, whichever is more. */
export function maxPostBytes(maxFrameBytes: number): number {
  return Math.max(4 * maxFrameBytes, 64 * 1024);
}

export interface EventStreamDeps {
  admission: AdmissionContext;
  connections: Connections;
  streams: LocalStreams;
  relay: PostRelay;
  cors: Cors;
  metrics: Metrics;
  log: Logger;
  maxFrameBytes: number;
}

const STATUS_CODE: Record<string, string> = { 401: 'forbidden', 403: 'forbidden', 429: 'rate_limited', 503: 'unavailable' };

/** `GET /sse` and `POST /sse/send`: the fallback transport (PROTOCOL.md, "Fallback transport"). */
export function registerEventStreams(app: TemplatedApp, deps: EventStreamDeps): void {
  deps.cors.preflight(app, '/sse', 'GET, OPTIONS');
  deps.cors.preflight(app, '/sse/send', 'POST, OPTIONS');
  app.get('/sse', (res, req) => openStream(res, deps, {
    token: req.getQuery('token') || bearerToken(req.getHeader('authorization')),
    user: req.getQuery('user'),
    mod: req.getQuery('mod'),
    origin: req.getHeader('origin'),
    peer: peerAddress(res),
    forwardedFor: req.getHeader('x-forwarded-for'),
  }));
  app.post('/sse/send', (res, req) => takePost(res, deps, req.getHeader('origin')));
}

function openStream(res: HttpResponse, deps: EventStreamDeps, knock: Parameters<typeof admit>[1]): void {
  const { streams, connections } = deps;
  const cors = deps.cors.headersFor(knock.origin);
  const aborted = watchAbort(res);
  if (cors === null) return send(res, aborted, { status: 403, body: { code: 'forbidden', message: 'origin not allowed' } });
  void admit(deps.admission, knock, 'sse').then((admitted) => {
    if (aborted.value) return;
    if (!admitted.ok) {
      const status = Number.parseInt(admitted.status, 10);
      return send(res, aborted, { status, body: { code: STATUS_CODE[status] ?? 'forbidden', message: admitted.reason }, headers: cors });
    }
    const { session } = admitted;
    const id = streams.newId();
    // The status and headers go out at once, with a comment: proxies and clients see the stream open before any event is due.
    res.cork(() => {
      res.writeStatus('200 OK')
        .writeHeader('Content-Type', 'text/event-stream')
        .writeHeader('Cache-Control', 'no-cache, no-transform')
        .writeHeader('X-Accel-Buffering', 'no'); // nginx (and ingress-nginx): pass events on as they come
      for (const [name, value] of Object.entries(cors)) res.writeHeader(name, value);
      res.write(HEARTBEAT);
    });
    const sink = new EventStreamSink(res, (code) => {
      streams.remove(id);
      connections.closed(session, code);
    });
    streams.add(id, { session, sink });
    connections.opened(session, sink, id);
  });
}

function takePost(res: HttpResponse, deps: EventStreamDeps, origin: string): void {
  const aborted = watchAbort(res);
  const cors = deps.cors.headersFor(origin);
  const answer = (result: SsePostResult, reply: ApiReply): void => {
    deps.metrics.ssePosts.incLabel(result);
    send(res, aborted, { ...reply, headers: { ...reply.headers, ...cors } });
  };
  if (cors === null) return send(res, aborted, { status: 403, body: { code: 'forbidden', message: 'origin not allowed' } });
  readBody(res, maxPostBytes(deps.maxFrameBytes), (body) => {
    if (body === null) return answer('too_large', { status: 413, body: { code: 'payload_too_large', message: `body exceeds ${maxPostBytes(deps.maxFrameBytes)} bytes` } });
    const post = parsePost(body);
    if (typeof post === 'string') return answer('bad_request', { status: 400, body: { code: 'bad_request', message: post } });
    deps.relay.deliver(post.session, post.frames).then((outcome) => {
      switch (outcome.status) {
        case 202:
          return answer(outcome.relayed ? 'relayed' : 'accepted', { status: 202, body: { accepted: outcome.accepted } });
        case 404:
          return answer('unknown_session', { status: 404, body: { code: 'unknown_session', message: 'no gateway holds this session (its stream ended): open a new stream and rejoin with since' } });
        case 503:
          return answer('unavailable', { status: 503, body: { code: 'unavailable', message: 'the gateway holding this session could not be reached in time; resend sends with the same key' } });
      }
    }, (err: unknown) => {
      deps.log.error({ err }, 'POST /sse/send failed');
      answer('unavailable', { status: 503, body: { code: 'unavailable', message: 'try again' } });
    });
  });
}

/** The session and each frame as JSON text (handled as if it came on a WebSocket), or why the body is refused (400). */
function parsePost(body: Buffer): { session: string; frames: string[] } | string {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    return 'body is not JSON';
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'body must be a JSON object';
  const { session, frames } = value as { session?: unknown; frames?: unknown };
  if (typeof session !== 'string') return '"session" must be a string';
  if (!Array.isArray(frames) || frames.length < 1 || frames.length > MAX_FRAMES_PER_POST) return `"frames" must be an array of 1 to ${MAX_FRAMES_PER_POST} frames`;
  return { session, frames: frames.map((frame) => JSON.stringify(frame)) };
}
