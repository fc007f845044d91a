import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';

const PREFLIGHT_MAX_AGE_S = '600';

/**
 * CORS for the fallback transport's routes, so an application served from
 * another origin can stream and POST. `allowed` null allows every origin.
 * Identity never comes from cookies, so credentials are never allowed.
 */
export class Cors {
  constructor(private readonly allowed: readonly string[] | null) {}

  /** Headers for an answer to `origin`; null when that origin is not allowed. A request without Origin needs none. */
  headersFor(origin: string): Record<string, string> | null {
    if (origin === '') return {};
    if (this.allowed !== null && !this.allowed.includes(origin)) return null;
    return { 'Access-Control-Allow-Origin': origin, Vary: 'Origin' };
  }

  /** Answers preflights (OPTIONS) for `pattern`. */
  preflight(app: TemplatedApp, pattern: string, methods: string): void {
    app.options(pattern, (res: HttpResponse, req: HttpRequest) => {
      const headers = this.headersFor(req.getHeader('origin'));
      if (headers === null) {
        res.writeStatus('403 Forbidden').writeHeader('Content-Type', 'application/json').end('{"code":"forbidden","message":"origin not allowed"}');
        return;
      }
      res.writeStatus('204 No Content');
      for (const [name, value] of Object.entries(headers)) res.writeHeader(name, value);
      res.writeHeader('Access-Control-Allow-Methods', methods)
        .writeHeader('Access-Control-Allow-Headers', 'Authorization, Content-Type')
        .writeHeader('Access-Control-Max-Age', PREFLIGHT_MAX_AGE_S)
        .end();
    });
  }
}
