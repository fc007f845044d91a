import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { AckFrame } from '@chat/protocol';
import { TestClient, sleep, waitFor } from '@chat/testkit';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { startGateway, type GatewayProcess } from './helpers/gateways.js';
import { createLossyLink, lossyLinkAvailable, type LossyLink } from './helpers/lossy-link.js';
import { scrape } from './helpers/metrics.js';

const CLIENT = fileURLToPath(new URL('./helpers/link-client.mjs', import.meta.url));
const HEARTBEAT_MS = 1000;
/** The contract's rule for streams: dead after three heartbeats of silence (45 s for 15 s). */
const SILENCE_MS = 3 * HEARTBEAT_MS;
const IDLE_TIMEOUT_S = 8;
const MESSAGES = 40;

/*
 * A client behind a slow, lossy link (300 ms round trip, 5 % of packets lost
 * each way) inside a network namespace the test makes, on both transports:
 * every message arrives once and in order, and a link that goes dead is noticed
 * within the heartbeat bound (streams: by the client, from the heartbeats;
 * WebSockets: by the gateway, from its pings, within IDLE_TIMEOUT_S).
 */
describe.skipIf(!lossyLinkAvailable())('a client on a slow, lossy link', () => {
  let link: LossyLink | undefined;
  let gateway: GatewayProcess | undefined;
  let stopClient = () => {};
  afterEach(async () => {
    stopClient();
    link?.remove();
    await gateway?.stop();
  });

  for (const transport of ['sse', 'ws'] as const) {
    it(`gets every message once and in order over ${transport}, and the link's death is noticed`, async () => {
      gateway = await startGateway({ REDIS_URL: inject('redisUrl'), REDIS_PREFIX: `lossy-${transport}:`, SSE_HEARTBEAT_MS: String(HEARTBEAT_MS), IDLE_TIMEOUT_S: String(IDLE_TIMEOUT_S) });
      link = createLossyLink({ delayMs: 300, loss: 0.05 });
      const address = await link.address(gateway.port);
      const [command, args] = link.exec(process.execPath, [CLIENT, transport, `http://${address}`, 'far', 'lossy', String(MESSAGES),
        // A WebSocket client hears the gateway's pings below the frames: silence proves nothing there.
        String(transport === 'sse' ? SILENCE_MS : 600_000)]);
      const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'] });
      stopClient = () => child.kill('SIGKILL');
      const said: Array<Record<string, unknown>> = [];
      createInterface({ input: child.stdout }).on('line', (line) => said.push(JSON.parse(line) as Record<string, unknown>));
      const heard = (key: string) => waitFor(() => said.some((s) => key in s), { what: `the far client to say ${key}`, timeoutMs: 60_000 });

      await heard('joined');
      const sender = await TestClient.connect(gateway.wsUrl, 'near');
      await sender.request({ type: 'join', room: 'lossy' });
      const acked: string[] = [];
      for (let i = 0; i < MESSAGES; i++) acked.push((await sender.request({ type: 'send', room: 'lossy', text: `m${i}`, key: `k${i}` }) as AckFrame).id);
      await heard('ids');
      expect(said.find((s) => 'ids' in s)!.ids).toEqual(acked);

      // Alive over the lossy link for a while: heartbeats (or pings) keep getting through.
      await sleep(SILENCE_MS + 1000);
      expect(said.filter((s) => 'dead' in s || 'closed' in s)).toEqual([]);
      const connections = async () => (await scrape(`${gateway!.httpUrl}/metrics`)).get(`chat_connections{transport="${transport}"}`);
      expect(await connections()).toBe(transport === 'ws' ? 2 : 1);

      const diedAt = Date.now();
      link.blackHole();
      if (transport === 'sse') {
        await heard('dead');
        expect(Date.now() - diedAt).toBeLessThan(SILENCE_MS + HEARTBEAT_MS + 1000);
      } else {
        await waitFor(async () => (await connections()) === 1, { what: 'the gateway to close the dead socket', timeoutMs: 3 * IDLE_TIMEOUT_S * 1000 });
        expect(Date.now() - diedAt).toBeLessThan(2 * IDLE_TIMEOUT_S * 1000 + 2000);
      }
      await sender.close();
    }, 120_000);
  }
});
