import { spawnSync } from 'node:child_process';
import { startChild, waitForPing } from '@chat/proc';

// Local redis-server processes, for the cluster and Sentinel topologies.

/**
 * Flags every data node gets. Own dbfilename: a replica renames the snapshot it
 * received to it and loads it back, so replicas sharing a dir could swap data.
 * No diskless-sync delay: the default waits 5 s for more replicas before a sync.
 */
export function dataNodeArgs(port: number, dir: string): string[] {
  return [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    '--dir', dir, '--dbfilename', `dump-${port}.rdb`, '--loglevel', 'warning',
    '--repl-diskless-sync-delay', '0',
  ];
}

export interface RedisProcess {
  readonly port: number;
  readonly pid: number;
  running(): boolean;
  /** Sends `signal` to this process only and waits for its exit; SIGKILL if it lingers. */
  halt(signal: NodeJS.Signals): Promise<void>;
}

const OUTPUT_KEPT = 4000;

export function requireRedisBinaries(who: string, binaries: readonly string[]): void {
  const missing = binaries.filter((bin) => spawnSync(bin, ['--version'], { stdio: 'ignore' }).status !== 0);
  if (missing.length > 0) {
    throw new Error(
      `${who} needs ${binaries.join(' and ')} on PATH but cannot run ${missing.join(', ')}: ` +
        'install them with `apt-get install redis-server` (that package ships both redis-server and redis-cli).',
    );
  }
}

/** Starts `redis-server args` and resolves once it answers PING on `port`; fails fast, with its output, if it exits. */
export async function launchRedis(port: number, args: readonly string[], timeoutMs = 10_000): Promise<RedisProcess> {
  const child = startChild('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString()).slice(-OUTPUT_KEPT);
  };
  child.process.stdout!.on('data', keep);
  child.process.stderr!.on('data', keep);
  child.process.once('error', (err) => { output += String(err); });
  let exited = false;
  void child.exited.then(() => { exited = true; });
  const proc: RedisProcess = {
    port,
    pid: child.pid ?? -1,
    running: () => !exited,
    halt: async (signal) => {
      if (!exited) await child.stop(signal, 10_000);
    },
  };
  // Its output is read to the end ('close') before it says why it failed; a snapshot child could keep
  // the pipes open, but none runs before the server answers a ping.
  const startFailed = new Promise<never>((_, reject) => child.process.once('close', () => reject(new Error(`redis-server on port ${port} exited during startup:\n${output}`))));
  try {
    await Promise.race([waitForPing(port, timeoutMs), startFailed]);
  } catch (err) {
    await proc.halt('SIGKILL');
    throw exited ? err : new Error(`redis-server on port ${port} did not answer within ${timeoutMs} ms:\n${output}`);
  }
  void startFailed.catch(() => {});
  return proc;
}

/** Starts them in parallel; if any fails, stops the others and rethrows. */
export async function launchAll(specs: ReadonlyArray<{ port: number; args: readonly string[] }>): Promise<RedisProcess[]> {
  const results = await Promise.allSettled(specs.map(({ port, args }) => launchRedis(port, args)));
  const started = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await stopAll(started);
    throw failed.reason;
  }
  return started;
}

export async function stopAll(procs: readonly RedisProcess[]): Promise<void> {
  await Promise.all(procs.map((p) => p.halt('SIGTERM')));
}
