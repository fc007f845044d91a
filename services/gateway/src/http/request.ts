import type { HttpResponse } from 'uWebSockets.js';

/** The token of an `Authorization: Bearer <token>` header, if that is what it holds. */
export function bearerToken(authorization: string): string | undefined {
  return authorization.startsWith('Bearer ') ? authorization.slice(7).trim() : undefined;
}

/**
 * uWS requires an abort handler on every response answered after the handler
 * returns, and a response must not be touched once aborted: check `value` first.
 */
export function watchAbort(res: HttpResponse): { value: boolean } {
  const aborted = { value: false };
  res.onAborted(() => {
    aborted.value = true;
  });
  return aborted;
}
