import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';

export interface ArchiverReadiness {
  ready: boolean;
  redis: 'up' | 'down';
  database: 'up' | 'down';
  /** Subscribed to wake-ups (else rooms wait for the next sweep). */
  listening: boolean;
  lagSeconds: number;
}

/** /healthz (the process lives), /readyz (Redis and PostgreSQL both work, wake-ups arrive), /metrics. */
export function createHttpServer(registry: Registry, readiness: () => ArchiverReadiness): Server {
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET') {
      res.writeHead(405, { 'content-type': 'application/json' }).end(JSON.stringify({ code: 'bad_request', message: 'GET only' }));
    } else if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    } else if (path === '/readyz') {
      const state = readiness();
      res.writeHead(state.ready ? 200 : 503, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(state));
    } else if (path === '/metrics') {
      registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        () => res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics collection failed'),
      );
    } else {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ code: 'bad_request', message: 'not found' }));
    }
  });
}
