import { readFileSync, readdirSync } from 'node:fs';
import { extname } from 'node:path';
import type { Registry } from 'prom-client';
import type { WebhookStatus } from '@chat/webhooks';
import type { TemplatedApp } from 'uWebSockets.js';
import { watchAbort } from './http/request.js';

export interface Readiness {
  ready: boolean;
  broker: 'up' | 'down';
  /** Redis subscriber connections that stopped hearing their own probes. */
  deafSubscribers: number;
  draining: boolean;
  /** Rooms reading back what their live stream missed (after a Redis outage): members may lag meanwhile. */
  catchingUp: number;
  /** `?user=` identities are accepted: never in production. */
  devIdentity: boolean;
  /** When webhooks are on: the cluster's undelivered events (a failing receiver does not make the node unready). */
  webhooks?: WebhookStatus;
  /** With the archive: `checking` until Redis is known to hold its conversations (restored from the archive if it lost them). */
  conversations?: 'ready' | 'checking';
}

export function registerHealthRoutes(app: TemplatedApp, readiness: () => Readiness): void {
  app.get('/healthz', (res) => {
    res.writeHeader('Content-Type', 'text/plain').end('ok');
  });
  app.get('/readyz', (res) => {
    const state = readiness();
    res.writeStatus(state.ready ? '200 OK' : '503 Service Unavailable')
      .writeHeader('Content-Type', 'application/json')
      .writeHeader('Cache-Control', 'no-store')
      .end(JSON.stringify(state));
  });
}

export function registerMetricsRoute(app: TemplatedApp, registry: Registry): void {
  app.get('/metrics', (res) => {
    const aborted = watchAbort(res);
    registry.metrics().then(
      (text) => {
        if (!aborted.value) res.cork(() => res.writeHeader('Content-Type', registry.contentType).end(text));
      },
      () => {
        if (!aborted.value) res.cork(() => res.writeStatus('500 Internal Server Error').end('metrics collection failed'));
      },
    );
  });
}

const LANDING = `<!doctype html><meta charset="utf-8"><title>chat gateway</title>
<h1>chat gateway</h1><p>WebSocket: <code>/ws?user=&lt;id&gt;</code> (protocol v1). Health: <a href="/healthz">/healthz</a>,
readiness: <a href="/readyz">/readyz</a>.</p>`;

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
};

/**
 * The chat page (built by `npm run build` into dist/public), read once at start.
 * Without it, `/` says where the WebSocket is.
 */
export function registerWebPage(app: TemplatedApp, directory: URL): void {
  let files: Map<string, { body: Buffer; type: string }>;
  try {
    files = new Map(readdirSync(directory).filter((name) => CONTENT_TYPES[extname(name)] !== undefined).map((name) => [
      `/${name}`, { body: readFileSync(new URL(name, directory)), type: CONTENT_TYPES[extname(name)]! },
    ]));
  } catch {
    files = new Map();
  }
  const index = files.get('/index.html');
  app.get('/', (res) => {
    res.writeHeader('Content-Type', 'text/html; charset=utf-8').writeHeader('Cache-Control', 'no-cache').end(index?.body ?? LANDING);
  });
  for (const [path, file] of files) {
    app.get(path, (res) => {
      res.writeHeader('Content-Type', file.type).writeHeader('Cache-Control', 'no-cache').end(file.body);
    });
  }
}

export function registerNotFound(app: TemplatedApp): void {
  app.any('/*', (res) => {
    res.writeStatus('404 Not Found').writeHeader('Content-Type', 'text/plain').end('not found');
  });
}
