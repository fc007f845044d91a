import { connect } from 'node:net';
import { startChild, type Child } from './child.js';
import { sleep } from './wait.js';

export interface RedisProcess {
  readonly port: number;
  readonly url: string;
  readonly child: Child;
}

/**
 * A redis-server on 127.0.0.1:`port`, in memory only unless `args` say
 * otherwise, its files in `dir`; resolves once it answers PING.
 */
export async function startRedisServer(port: number, dir: string, args: readonly string[] = []): Promise<RedisProcess> {
  const child = startChild('redis-server', [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--loglevel', 'warning', ...args,
  ]);
  await Promise.race([
    waitForPing(port, 10_000),
    child.exited.then((exit) => { throw new Error(`redis-server on port ${port} exited at start (${JSON.stringify(exit)})`); }),
  ]);
  return { port, url: `redis://127.0.0.1:${port}`, child };
}

/** Resolves once a PING on 127.0.0.1:port gets +PONG. */
export async function waitForPing(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ping(port))) {
    if (Date.now() > deadline) throw new Error(`redis on port ${port} did not answer within ${timeoutMs} ms`);
    await sleep(20);
  }
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (data) => done(data.toString().startsWith('+PONG')));
  });
}
