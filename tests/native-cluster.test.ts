import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { TestClient, sleep, waitFor } from '@chat/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireTool } from './helpers/tools.js';

interface Ready {
  lb: string;
  ws: string;
  gateways: Array<{ nodeId: string; pid: number; url: string }>;
}

const script = fileURLToPath(new URL('../deploy/native/cluster.mjs', import.meta.url));

describe('the native topology (npm run cluster): HAProxy in front of three gateways', () => {
  let cluster: ReturnType<typeof spawn>;
  let ready: Ready;

  beforeAll(async () => {
    requireTool('haproxy', 'apt-get install haproxy');
    cluster = spawn(process.execPath, [script, '--port', '0', '--json', '--env', 'SHUTDOWN_GRACE_MS=1000'], { stdio: ['ignore', 'pipe', 'inherit'] });
    ready = await new Promise<Ready>((resolve, reject) => {
      cluster.once('exit', (code) => reject(new Error(`cluster script exited with ${code}`)));
      createInterface({ input: cluster.stdout! }).on('line', (line) => {
        if (line.startsWith('{')) resolve(JSON.parse(line) as Ready);
      });
    });
  });
  afterAll(async () => {
    const exited = new Promise((resolve) => cluster.once('exit', resolve));
    cluster.kill('SIGTERM');
    expect(await exited).toBe(0);
  });

  it('spreads clients over the gateways, routes around a stopped one, and its clients reconnect and keep chatting', async () => {
    const clients = await Promise.all(Array.from({ length: 6 }, (_, i) => TestClient.connect(ready.ws, `u${i}`)));
    const nodes = new Set(clients.map((c) => c.welcome.node));
    expect(nodes.size).toBe(3);
    await Promise.all(clients.map((c) => c.request({ type: 'join', room: 'lobby' })));
    await clients[0]!.request({ type: 'send', room: 'lobby', text: 'before' });
    for (const c of clients) await c.waitFor((f) => f.type === 'message' && f.text === 'before');

    const victim = ready.gateways.find((g) => g.nodeId === clients[0]!.welcome.node)!;
    process.kill(victim.pid, 'SIGTERM');
    const orphans = clients.filter((c) => c.welcome.node === victim.nodeId);
    for (const c of orphans) expect((await c.closed).code).toBe(1001);
    await waitFor(async () => fetch(`${victim.url}/readyz`).then(() => false, () => true), { what: 'the stopped gateway to be gone' });

    // Its clients come back through the load balancer, resume with since, and land elsewhere.
    const survivors = clients.filter((c) => !orphans.includes(c));
    const replacements = await Promise.all(orphans.map(async (c) => {
      for (;;) {
        try {
          const fresh = await TestClient.connect(ready.ws, c.welcome.user);
          const last = c.messages('lobby').at(-1)!.id;
          const joined = await fresh.request({ type: 'join', room: 'lobby', since: last });
          if (joined.type === 'joined') return fresh;
          await fresh.close();
        } catch {
          // the balancer may still try the stopped gateway once: retry
        }
        await sleep(100);
      }
    }));
    for (const r of replacements) expect(r.welcome.node).not.toBe(victim.nodeId);
    await replacements[0]!.request({ type: 'send', room: 'lobby', text: 'after' });
    for (const c of [...survivors, ...replacements]) await c.waitFor((f) => f.type === 'message' && f.text === 'after');

    // New connections only reach the gateways that are left.
    const newcomers = await Promise.all(Array.from({ length: 6 }, (_, i) => TestClient.connect(ready.ws, `late${i}`)));
    expect(newcomers.every((c) => c.welcome.node !== victim.nodeId)).toBe(true);
    await Promise.all([...survivors, ...replacements, ...newcomers].map((c) => c.close()));
  });
});
