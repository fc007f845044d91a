import { fileURLToPath } from 'node:url';
import { spawnService, uniquePrefix, type ServiceProcess } from '@chat/testkit';

export const GATEWAY_ENTRY = fileURLToPath(new URL('../../services/gateway/dist/main.js', import.meta.url));
export const ARCHIVER_ENTRY = fileURLToPath(new URL('../../services/archiver/dist/main.js', import.meta.url));

export interface GatewayProcess extends ServiceProcess {
  readonly nodeId: string;
  readonly wsUrl: string;
  readonly httpUrl: string;
}

/** One gateway process on a free port of 127.0.0.1. */
export async function startGateway(env: Record<string, string>): Promise<GatewayProcess> {
  const nodeId = env.NODE_ID ?? `gw-${Math.random().toString(36).slice(2, 8)}`;
  const service = await spawnService(GATEWAY_ENTRY, {
    env: { PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env, NODE_ID: nodeId },
  });
  return {
    ...service,
    nodeId,
    wsUrl: `ws://127.0.0.1:${service.port}/ws`,
    httpUrl: `http://127.0.0.1:${service.port}`,
  };
}

export interface ArchiverProcess extends ServiceProcess {
  readonly httpUrl: string;
}

/** One archiver process, its health and metrics on a free port of 127.0.0.1. */
export async function startArchiver(env: Record<string, string>): Promise<ArchiverProcess> {
  const service = await spawnService(ARCHIVER_ENTRY, {
    env: { PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', ARCHIVE_CYCLE_MS: '50', ...env },
  });
  return { ...service, httpUrl: `http://127.0.0.1:${service.port}` };
}

export interface Cluster {
  readonly gateways: GatewayProcess[];
  readonly prefix: string;
  stop(): Promise<void>;
}

/** `count` gateways on one Redis, with a key prefix of their own. */
export async function startCluster(count: number, redisUrl: string, env: Record<string, string> = {}): Promise<Cluster> {
  const prefix = uniquePrefix('it');
  const gateways = await Promise.all(
    Array.from({ length: count }, (_, i) =>
      startGateway({ REDIS_URL: redisUrl, REDIS_PREFIX: prefix, NODE_ID: `gw-${i + 1}`, ...env })),
  );
  return {
    gateways,
    prefix,
    stop: async () => {
      await Promise.all(gateways.map((g) => g.stop()));
    },
  };
}

export async function readyz(gateway: GatewayProcess): Promise<number> {
  try {
    return (await fetch(`${gateway.httpUrl}/readyz`)).status;
  } catch {
    return 0;
  }
}
