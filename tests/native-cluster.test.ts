import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { TestClient, sleep, waitFor } from '@chat/testkit';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireTool } from './helpers/tools.js';

interface Ready {
  lb: string;
  ws: string;
  gateways: Array<{ nodeId: string; pid: number; url: string }>;
  redisMode: 'single' | 'cluster';
  redis?: string;
  redisCluster?: string[];
  redisPids: number[];
  redisData: string | null;
  haproxyPid: number;
  haproxyConfig: string;
  wss?: string;
  tlsCa?: string;
  logs: string;
}

const script = fileURLToPath(new URL('../deploy/native/cluster.mjs', import.meta.url));

/** Starts the script on free ports and resolves with its JSON ready line. */
async function startScript(...extra: string[]): Promise<{ cluster: ReturnType<typeof spawn>; ready: Ready }> {
  const cluster = spawn(process.execPath, [script, '--port', '0', '--json', '--env', 'SHUTDOWN_GRACE_MS=1000', ...extra],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  const ready = await new Promise<Ready>((resolve, reject) => {
    cluster.once('exit', (code) => reject(new Error(`cluster script exited with ${code}`)));
    createInterface({ input: cluster.stdout! }).on('line', (line) => {
      if (line.startsWith('{')) resolve(JSON.parse(line) as Ready);
    });
  });
  return { cluster, ready };
}

/** SIGTERM, as Ctrl-C would do; resolves with the exit code. */
async function stopScript(cluster: ReturnType<typeof spawn>): Promise<number | null> {
  if (cluster.exitCode !== null || cluster.signalCode !== null) return cluster.exitCode;
  const exited = new Promise<number | null>((resolve) => cluster.once('exit', resolve));
  cluster.kill('SIGTERM');
  return exited;
}

const running = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('the native topology (npm run cluster): HAProxy in front of three gateways', () => {
  let cluster: ReturnType<typeof spawn>;
  let ready: Ready;

  beforeAll(async () => {
    requireTool('haproxy', 'apt-get install haproxy');
    ({ cluster, ready } = await startScript('--ephemeral'));
  });
  afterAll(async () => {
    expect(await stopScript(cluster)).toBe(0);
  });

  it('spreads clients over the gateways, routes around a stopped one, its clients keep chatting, and it comes back by itself', async () => {
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
    await waitFor(async () => fetch(`${victim.url}/readyz`).then(() => false, () => true), { what: 'the stopped gateway to be gone', intervalMs: 10 });

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

    // The script starts the stopped gateway again, on its port, as compose's restart policy would.
    await waitFor(async () => (await fetch(`${victim.url}/readyz`).catch(() => undefined))?.status === 200,
      { what: 'the stopped gateway back on its port', timeoutMs: 15_000 });
    await Promise.all([...survivors, ...replacements].map((c) => c.close()));
  });
});

/** Opens `url` with `ws` and the given TLS options; resolves with the socket once open, rejects with the error. */
function openSocket(url: string, options: WebSocket.ClientOptions): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, options);
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

describe('npm run cluster -- --tls: wss:// through HAProxy with a development CA', () => {
  let cluster: ReturnType<typeof spawn>;
  let ready: Ready;
  beforeAll(async () => {
    requireTool('haproxy', 'apt-get install haproxy');
    requireTool('openssl', 'apt-get install openssl');
    ({ cluster, ready } = await startScript('--ephemeral', '--tls', '--gateways', '2'));
  });
  afterAll(async () => {
    expect(await stopScript(cluster)).toBe(0);
  });

  it('chats with a client that trusts the generated CA, refuses one that does not, and the config passes haproxy -c', async () => {
    const ca = readFileSync(ready.tlsCa!);
    const ws = await openSocket(`${ready.wss!}?user=tls-alice`, { ca });
    const frames: Array<Record<string, unknown>> = [];
    ws.on('message', (data) => frames.push(JSON.parse(String(data)) as Record<string, unknown>));
    await waitFor(() => frames.some((f) => f.type === 'welcome'), { what: 'welcome over wss' });
    ws.send(JSON.stringify({ type: 'join', room: 'secure', ref: 'j' }));
    await waitFor(() => frames.some((f) => f.type === 'joined'), { what: 'joined' });
    ws.send(JSON.stringify({ type: 'send', room: 'secure', text: 'over tls', ref: 's' }));
    await waitFor(() => frames.some((f) => f.type === 'message' && f.text === 'over tls') && frames.some((f) => f.type === 'ack'), { what: 'the message and its ack' });
    ws.close();

    await expect(openSocket(`${ready.wss!}?user=tls-mallory`, {})).rejects.toThrow(/self.signed|unable to verify|certificate/i);

    const health = await new Promise<{ status: number; hsts: unknown }>((resolve, reject) => {
      https.get(`${ready.wss!.replace('wss:', 'https:').replace('/ws', '/readyz')}`, { ca }, (res) => {
        res.resume();
        resolve({ status: res.statusCode ?? 0, hsts: res.headers['strict-transport-security'] });
      }).on('error', reject);
    });
    expect(health).toEqual({ status: 200, hsts: 'max-age=63072000' });
    const checked = spawnSync('haproxy', ['-c', '-f', ready.haproxyConfig], { encoding: 'utf8' });
    expect(checked.status, `${checked.stdout}${checked.stderr}`).toBe(0);
  });
});

/** The history of `room` as a newcomer gets it through the balancer. */
async function historyOf(ready: Ready, room: string): Promise<string[]> {
  const client = await TestClient.connect(ready.ws, 'newcomer');
  const joined = await client.request({ type: 'join', room });
  await client.close();
  return joined.type === 'joined' ? joined.history.map((m) => m.text) : [];
}

describe('npm run cluster keeps Redis data in the directory it prints', () => {
  const data = mkdtempSync(join(tmpdir(), 'cluster-data-'));
  let cluster: ReturnType<typeof spawn> | undefined;
  afterAll(async () => {
    if (cluster) await stopScript(cluster);
    rmSync(data, { recursive: true, force: true });
  });

  it('with an append-only file: the history is still there when the script (and Redis) start again', async () => {
    requireTool('haproxy', 'apt-get install haproxy');
    let ready: Ready;
    ({ cluster, ready } = await startScript('--data-dir', data, '--gateways', '1'));
    expect(ready.redisData).toBe(join(data, 'redis'));
    const writer = await TestClient.connect(ready.ws, 'writer');
    await writer.request({ type: 'join', room: 'kept' });
    expect(await writer.request({ type: 'send', room: 'kept', text: 'still here' })).toMatchObject({ type: 'ack' });
    await writer.close();
    expect(await stopScript(cluster)).toBe(0);
    expect(readdirSync(join(data, 'redis'))).toContain('appendonlydir');

    ({ cluster, ready } = await startScript('--data-dir', data, '--gateways', '1'));
    expect(await historyOf(ready, 'kept')).toEqual(['still here']);
    expect(await stopScript(cluster)).toBe(0);
    cluster = undefined;
  }, 30_000);
});

describe('npm run cluster -- --archive: PostgreSQL and two archivers too', () => {
  let cluster: ReturnType<typeof spawn> | undefined;
  afterAll(async () => {
    if (cluster) await stopScript(cluster);
  });

  it('serves history past the Redis window from the archive, through the balancer', async () => {
    requireTool('haproxy', 'apt-get install haproxy');
    let ready: Ready & { postgres?: string; archivers?: Array<{ url: string }> };
    ({ cluster, ready } = await startScript('--ephemeral', '--archive', '--gateways', '2', '--env', 'HISTORY_SIZE=20'));
    expect(ready.postgres).toMatch(/^postgres:\/\//);
    expect(ready.archivers).toHaveLength(2);
    for (const a of ready.archivers!) await waitFor(async () => (await fetch(`${a.url}/readyz`)).ok, { what: 'archiver ready' });
    const writer = await TestClient.connect(ready.ws, 'writer');
    await writer.request({ type: 'join', room: 'long' });
    const acked: string[] = [];
    for (let i = 0; i < 40; i++) {
      acked.push(((await writer.request({ type: 'send', room: 'long', text: `m${i}` })) as { id: string }).id);
      await sleep(20); // the archivers look every 100 ms: this room stays within its window of 20
    }
    // Past the 20 the stream keeps, the page continues from PostgreSQL once the archivers have them.
    await waitFor(async () => {
      const page = await writer.request({ type: 'history', room: 'long', limit: 100 });
      return page.type === 'history' && page.messages.length === 40;
    }, { what: 'all 40 in one page', timeoutMs: 15_000 });
    const page = await writer.request({ type: 'history', room: 'long', limit: 100 });
    expect(page.type === 'history' && page.messages.map((m) => m.id)).toEqual(acked);
    await writer.close();
    expect(await stopScript(cluster)).toBe(0);
    cluster = undefined;
  }, 60_000);
});

describe('npm run cluster -- --redis-cluster: the same on a Redis Cluster of 3 primaries + 3 replicas', () => {
  const data = mkdtempSync(join(tmpdir(), 'cluster-data-'));
  let cluster: ReturnType<typeof spawn> | undefined;
  afterAll(async () => {
    if (cluster) await stopScript(cluster); // if the test failed before stopping it
    rmSync(data, { recursive: true, force: true });
  });

  it('starts six nodes and gateways that are ready on them; clients chat through the balancer; SIGTERM stops it all', async () => {
    requireTool('haproxy', 'apt-get install haproxy');
    let ready: Ready;
    ({ cluster, ready } = await startScript('--redis-cluster', '--data-dir', data));

    expect(ready.redisMode).toBe('cluster');
    expect(ready.redisData).toBe(join(data, 'redis-cluster'));
    expect(ready.redis).toBeUndefined();
    expect(new Set(ready.redisCluster).size).toBe(6);
    for (const node of ready.redisCluster!) expect(node).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(ready.redisPids).toHaveLength(6);
    const info = spawnSync('redis-cli', ['-p', ready.redisCluster![0]!.split(':')[1]!, 'cluster', 'info'], { encoding: 'utf8' }).stdout;
    expect(info).toMatch(/^cluster_state:ok\r?$/m);
    expect(info).toMatch(/^cluster_size:3\r?$/m); // three primaries own the slots
    expect(info).toMatch(/^cluster_known_nodes:6\r?$/m);
    for (const g of ready.gateways) expect((await fetch(`${g.url}/readyz`)).status, g.nodeId).toBe(200);
    const nodes = ready.redisCluster!;

    // leastconn puts the second client on another gateway: the message crosses the cluster.
    const alice = await TestClient.connect(ready.ws, 'alice');
    const bob = await TestClient.connect(ready.ws, 'bob');
    expect(alice.welcome.node).not.toBe(bob.welcome.node);
    await alice.request({ type: 'join', room: 'sharded' });
    await bob.request({ type: 'join', room: 'sharded' });
    await alice.request({ type: 'send', room: 'sharded', text: 'hello from alice' });
    await bob.waitFor((f) => f.type === 'message' && f.text === 'hello from alice');
    await bob.request({ type: 'send', room: 'sharded', text: 'hello from bob' });
    await alice.waitFor((f) => f.type === 'message' && f.text === 'hello from bob');
    await Promise.all([alice.close(), bob.close()]);

    const started = [...ready.redisPids, ...ready.gateways.map((g) => g.pid), ready.haproxyPid];
    expect(started.filter(running)).toEqual(started);
    expect(await stopScript(cluster)).toBe(0);
    expect(started.filter(running)).toEqual([]);
    expect(existsSync(ready.logs)).toBe(false); // the temp dir with the logs is gone; the data is kept

    // Started again on the same data: the same cluster, on the same ports, with its history.
    ({ cluster, ready } = await startScript('--redis-cluster', '--data-dir', data));
    expect(new Set(ready.redisCluster)).toEqual(new Set(nodes));
    expect(await historyOf(ready, 'sharded')).toEqual(['hello from alice', 'hello from bob']);
    expect(await stopScript(cluster)).toBe(0);
    cluster = undefined;
  }, 60_000);
});
