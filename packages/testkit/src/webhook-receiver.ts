import { createServer, type IncomingHttpHeaders } from 'node:http';

export interface ReceivedDelivery {
  headers: IncomingHttpHeaders;
  body: string;
  /** The body parsed, when it was JSON. */
  event: { id: string; type: string; ts: number; data: Record<string, unknown> } | undefined;
  /** What the receiver answered. */
  status: number;
  at: number;
}

export interface WebhookReceiver {
  url: string;
  /** Every delivery, answered or not, in arrival order. */
  readonly deliveries: ReceivedDelivery[];
  /** The deliveries answered 2xx. */
  accepted(): ReceivedDelivery[];
  /** Decides the status of each delivery from now on (200 by default); may delay its answer. */
  respond(decide: (delivery: Omit<ReceivedDelivery, 'status'>) => number | Promise<number>): void;
  close(): Promise<void>;
}

/** A real HTTP receiver on 127.0.0.1, recording what a webhook sender posts. */
export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const deliveries: ReceivedDelivery[] = [];
  let decide: (delivery: Omit<ReceivedDelivery, 'status'>) => number | Promise<number> = () => 200;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      let event: ReceivedDelivery['event'];
      try {
        event = JSON.parse(body) as ReceivedDelivery['event'];
      } catch {
        event = undefined;
      }
      const received = { headers: req.headers, body, event, at: Date.now() };
      void Promise.resolve(decide(received)).then((status) => {
        deliveries.push({ ...received, status });
        res.writeHead(status, { 'content-type': 'text/plain' }).end(String(status));
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}/hooks`,
    deliveries,
    accepted: () => deliveries.filter((d) => d.status >= 200 && d.status < 300),
    respond(next) {
      decide = next;
    },
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
