import type { ErrorCode } from '@chat/protocol';
import type { HttpResponse } from 'uWebSockets.js';

/** An answer of the server API: a status and a JSON body (an object, or JSON already serialized). */
export interface ApiReply {
  status: number;
  body: object | string;
  headers?: Record<string, string>;
}

const STATUS_TEXT: Record<number, string> = {
  200: 'OK', 201: 'Created', 202: 'Accepted', 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed',
  409: 'Conflict', 410: 'Gone', 413: 'Payload Too Large', 429: 'Too Many Requests', 500: 'Internal Server Error', 503: 'Service Unavailable',
};

/** Every error of the server API: `{"code","message"}`, the code one of the protocol's. */
export function apiError(status: number, code: ErrorCode, message: string, headers?: Record<string, string>): ApiReply {
  return { status, body: { code, message }, ...(headers !== undefined && { headers }) };
}

export function send(res: HttpResponse, aborted: { value: boolean }, reply: ApiReply): void {
  if (aborted.value) return;
  res.cork(() => {
    res.writeStatus(`${reply.status} ${STATUS_TEXT[reply.status] ?? ''}`).writeHeader('Content-Type', 'application/json').writeHeader('Cache-Control', 'no-store');
    for (const [name, value] of Object.entries(reply.headers ?? {})) res.writeHeader(name, value);
    res.end(typeof reply.body === 'string' ? reply.body : JSON.stringify(reply.body));
  });
}

/** Collects the body, or hands null once it exceeds `limit`. */
export function readBody(res: HttpResponse, limit: number, done: (body: Buffer | null) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  res.onData((chunk, isLast) => {
    size += chunk.byteLength;
    if (size <= limit) chunks.push(Buffer.from(chunk.slice(0))); // uWS reuses the chunk's memory
    if (isLast) done(size > limit ? null : Buffer.concat(chunks));
  });
}

/** The body as a JSON object (an empty body is `{}` when `emptyIsObject`), or the 400 to answer. */
export function jsonObject(body: Buffer | undefined, emptyIsObject: boolean): { ok: true; value: Record<string, unknown> } | { ok: false; reply: ApiReply } {
  const text = body?.toString('utf8') ?? '';
  if (text.trim() === '' && emptyIsObject) return { ok: true, value: {} };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, reply: apiError(400, 'bad_request', 'body is not JSON') };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, reply: apiError(400, 'bad_request', 'body must be a JSON object') };
  return { ok: true, value: value as Record<string, unknown> };
}
