import { MemoryBroker, MemoryDirectory, MemoryEventFeed, MemoryHub, MemoryMembership, MemoryMessageChanges, MemoryModeration, MemoryReadPositions, MemoryRevocations } from '@chat/broker';
import { TestClient } from '@chat/testkit';
import { afterEach } from 'vitest';
import { pino } from 'pino';
import { loadConfig, type Config } from '../src/config.js';
import { createGateway, type Gateway } from '../src/gateway.js';

export interface TestGateway {
  gateway: Gateway;
  broker: MemoryBroker;
  config: Config;
  wsUrl: string;
  httpUrl: string;
  connect(user: string): Promise<TestClient>;
  close(): Promise<void>;
}

/** A gateway in this process on a free port; gateways given the same hub form one cluster. */
export async function startTestGateway(
  env: Record<string, string> = {}, hub = new MemoryHub(), deliveryDelayMs = 0,
): Promise<TestGateway> {
  const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', NODE_ID: 'unit', LOG_LEVEL: 'silent', ...env });
  const recording = config.webhooks && { types: config.webhooks.events, backlogLimit: config.webhooks.backlogLimit };
  const broker = new MemoryBroker({ historySize: config.historySize, hub, deliveryDelayMs, events: recording });
  const gateway = createGateway({
    config, broker, directory: new MemoryDirectory(hub), revocations: new MemoryRevocations(hub),
    membership: new MemoryMembership(hub), reads: new MemoryReadPositions(hub), changes: new MemoryMessageChanges(hub, broker), moderation: new MemoryModeration(hub),
    events: recording && new MemoryEventFeed(hub.events), log: pino({ level: "silent" }),
  });
  const port = await gateway.listen();
  const wsUrl = `ws://127.0.0.1:${port}/ws`;
  return {
    gateway,
    broker,
    config,
    wsUrl,
    httpUrl: `http://127.0.0.1:${port}`,
    connect: (user) => TestClient.connect(wsUrl, user),
    close: () => gateway.close(),
  };
}

/**
 * Gateways and clients a test file starts, stopped after each test:
 * `const { gateway, connect } = trackTestGateways();` at the top of a file.
 */
export function trackTestGateways() {
  const started: TestGateway[] = [];
  const clients: TestClient[] = [];
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.terminate()));
    await Promise.all(started.splice(0).map((g) => g.close()));
  });
  const tracker = {
    async gateway(env: Record<string, string> = {}, hub?: MemoryHub, deliveryDelayMs = 0): Promise<TestGateway> {
      const g = await startTestGateway(env, hub, deliveryDelayMs);
      started.push(g);
      return g;
    },
    async connect(g: TestGateway, user: string): Promise<TestClient> {
      const c = await g.connect(user);
      clients.push(c);
      return c;
    },
    /**
     * Two nodes of one cluster, a writer on the first and a reader on the second,
     * both in `room`, and `texts` sent by the writer and seen by the reader.
     */
    async twoNodesInRoom(room: string, texts: string[]) {
      const hub = new MemoryHub();
      const g1 = await tracker.gateway({ NODE_ID: 'n1' }, hub);
      const g2 = await tracker.gateway({ NODE_ID: 'n2' }, hub);
      const writer = await tracker.connect(g1, 'writer');
      const reader = await tracker.connect(g2, 'reader');
      await writer.request({ type: 'join', room });
      await reader.request({ type: 'join', room });
      const ids: string[] = [];
      for (const text of texts) {
        const ack = await writer.request({ type: 'send', room, text });
        if (ack.type !== 'ack') throw new Error(`send refused: ${JSON.stringify(ack)}`);
        ids.push(ack.id);
      }
      await reader.until(() => reader.messages(room).length === texts.length, { what: `${texts.length} messages` });
      return { hub, g1, g2, writer, reader, ids };
    },
  };
  return tracker;
}

/** A sample of the gateway's /metrics: the first line of `name` (with its labels, if given in `name`); 0 when absent. */
export async function metric(g: TestGateway, name: string): Promise<number> {
  const text = await (await fetch(`${g.httpUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line === undefined ? 0 : Number(line.split(' ').at(-1));
}
