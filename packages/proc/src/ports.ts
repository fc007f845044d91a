import { createServer } from 'node:net';

/** A port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Whether `port` can be listened on at 127.0.0.1 now. */
export function isPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * A free port below the kernel's ephemeral range, for a server restarted on the
 * same port: a port from the ephemeral range may be taken meanwhile as the local
 * port of an outgoing connection (even one retrying to reach it).
 */
export async function freeStablePort(from = 20_000, to = 32_000): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = from + Math.floor(Math.random() * (to - from));
    if (await isPortFree(port)) return port;
  }
  throw new Error(`no free port found in ${from}-${to}`);
}

/** A Redis Cluster node also listens on its port + 10000 (the cluster bus). */
export const CLUSTER_BUS_OFFSET = 10_000;

/** `count` distinct free ports whose cluster-bus ports are free too, none colliding with another's. */
export async function freeClusterPorts(count: number, pick: () => Promise<number> = freePort): Promise<number[]> {
  const taken = new Set<number>();
  const ports: number[] = [];
  for (let attempt = 0; ports.length < count; attempt++) {
    if (attempt > 500) throw new Error(`found only ${ports.length} of ${count} free port pairs for a Redis Cluster`);
    const port = await pick();
    const bus = port + CLUSTER_BUS_OFFSET;
    if (bus > 65_535 || taken.has(port) || taken.has(bus) || !(await isPortFree(bus))) continue;
    taken.add(port).add(bus);
    ports.push(port);
  }
  return ports;
}
