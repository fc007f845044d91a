// Gateways for a benchmark, on free ports, each ready before it returns.
import { createInterface } from 'node:readline';
import { log, start } from './processes.mjs';
import { waitUntil } from './redis-nodes.mjs';

export const GATEWAY_ENV = {
  RATE_LIMIT_PER_SEC: '1000000', RATE_LIMIT_BURST: '1000000', RATE_LIMIT_CLOSE_AFTER: '1000000',
  HOST: '127.0.0.1', LOG_LEVEL: 'warn', PORT: '0',
  // Exactly one Redis mode per run: clear whatever the caller's environment holds.
  REDIS_URL: '', REDIS_CLUSTER_NODES: '', REDIS_SENTINELS: '', REDIS_WAIT_REPLICAS: '0',
};

/**
 * `perGateway(i)`: environment of the i-th gateway alone (an inspector port, say).
 * `checkout`: the repository whose build runs (this one unless comparing builds).
 */
export async function startGateways(count, redisEnv, extraEnv, perGateway = () => ({}), checkout = undefined) {
  const prefix = `bench-cluster-${Date.now()}:`;
  const procs = [];
  const ports = [];
  const state = { stopping: false }; // their shutdown warnings ("broker down") are not worth showing
  for (let i = 0; i < count; i++) {
    const child = start(process.execPath, ['services/gateway/dist/main.js'], {
      env: { ...GATEWAY_ENV, ...redisEnv, ...extraEnv, ...perGateway(i), NODE_ID: `gw-${i + 1}`, REDIS_PREFIX: prefix, LOG_LEVEL: 'info' },
      stdout: 'pipe',
      cwd: checkout,
    });
    procs.push(child);
    const { port, broker } = await new Promise((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`gateway exited with ${code} before listening`)));
      createInterface({ input: child.stdout }).on('line', (line) => {
        try {
          const entry = JSON.parse(line);
          if (entry.msg === 'listening') resolve(entry);
          else if (entry.level >= 40 && !state.stopping && !/DEVELOPMENT IDENTITIES/.test(entry.msg)) log(`   gw-${i + 1}: ${line.slice(0, 300)}`);
        } catch { /* not JSON */ }
      });
    });
    if (!String(broker).startsWith(`redis ${redisEnv.REDIS_URL ? 'standalone' : 'cluster'}`)) throw new Error(`gateway runs on "${broker}"`);
    ports.push(port);
  }
  for (const port of ports) {
    await waitUntil(`gateway ${port} /readyz`, async () => {
      const res = await fetch(`http://127.0.0.1:${port}/readyz`);
      if (!res.ok) throw new Error(await res.text());
      return true;
    }, 30_000);
  }
  return { procs, ports, state, urls: ports.map((p) => `ws://127.0.0.1:${p}/ws`), pids: procs.map((p) => p.pid) };
}
