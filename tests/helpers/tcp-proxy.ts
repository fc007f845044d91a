import net from 'node:net';

export interface TcpProxyOptions {
  /**
   * Act as a middlebox that breaks WebSockets: a connection whose first request
   * asks for a WebSocket upgrade gets the gateway's answer headers (the 101 goes
   * through, so the socket opens) and then nothing more from the gateway.
   * Other requests (an event stream, POSTs) pass untouched.
   */
  stallWebSockets?: boolean;
}

export interface TcpProxy {
  readonly port: number;
  /** `ws://127.0.0.1:<port>/ws` */
  readonly wsUrl: string;
  readonly httpUrl: string;
  /** Connections taken so far, and how many of them were WebSocket upgrades it stalled. */
  readonly stats: { connections: number; stalled: number };
  /** Black-holes every connection open now, both ways, without closing it (no FIN, no RST); new ones pass. */
  freeze(): void;
  close(): Promise<void>;
}

const UPGRADE = /^GET [^\r\n]*\r\n(?:[^\r\n]+\r\n)*?upgrade:\s*websocket\r\n/i;

/**
 * A TCP proxy on 127.0.0.1 in front of `targets` (ports of 127.0.0.1): each
 * connection goes to the next target in turn (round robin, no stickiness), and
 * to the one after when a target refuses, as a load balancer redispatches.
 */
export async function startTcpProxy(targets: number[], options: TcpProxyOptions = {}): Promise<TcpProxy> {
  const sockets = new Set<net.Socket>();
  const pairs = new Set<[net.Socket, net.Socket]>();
  const stats = { connections: 0, stalled: 0 };
  let turn = 0;
  const track = (socket: net.Socket): net.Socket => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    return socket;
  };

  const connectUpstream = (tries: number, first: number, done: (upstream: net.Socket | null) => void): void => {
    if (tries === targets.length) return done(null);
    const port = targets[(first + tries) % targets.length]!;
    const upstream = net.connect(port, '127.0.0.1');
    upstream.once('connect', () => done(track(upstream)));
    upstream.once('error', () => {
      upstream.destroy();
      connectUpstream(tries + 1, first, done);
    });
  };

  const server = net.createServer((client) => {
    track(client);
    stats.connections++;
    client.pause();
    client.once('readable', () => {
      const head = client.read() as Buffer | null;
      if (head === null) return client.destroy();
      const stall = options.stallWebSockets === true && UPGRADE.test(head.toString('latin1'));
      if (stall) stats.stalled++;
      connectUpstream(0, turn++, (upstream) => {
        if (upstream === null) return client.destroy();
        const pair: [net.Socket, net.Socket] = [client, upstream];
        pairs.add(pair);
        client.on('close', () => pairs.delete(pair));
        upstream.write(head);
        client.pipe(upstream);
        client.resume();
        client.on('close', () => upstream.destroy());
        upstream.on('close', () => client.destroy());
        if (!stall) {
          upstream.pipe(client);
          return;
        }
        // The answer's headers, then silence: whatever the gateway sends after them is dropped.
        let headers = Buffer.alloc(0);
        let passed = false;
        upstream.on('data', (chunk: Buffer) => {
          if (passed) return;
          headers = Buffer.concat([headers, chunk]);
          const end = headers.indexOf('\r\n\r\n');
          if (end < 0) return;
          passed = true;
          client.write(headers.subarray(0, end + 4));
        });
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    httpUrl: `http://127.0.0.1:${port}`,
    stats,
    freeze: () => {
      for (const [client, upstream] of pairs) {
        client.unpipe();
        upstream.unpipe();
        upstream.removeAllListeners('data');
        client.pause();
        upstream.pause();
      }
      pairs.clear();
    },
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
