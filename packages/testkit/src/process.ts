import { createInterface } from 'node:readline';
import { startChild, type Exit } from '@chat/proc';

export type { Exit };

export interface ServiceProcess {
  readonly pid: number;
  readonly port: number;
  /** Every JSON log line so far (others are kept as { raw }). */
  readonly logs: Array<Record<string, unknown>>;
  readonly exited: Promise<Exit>;
  /** Sends `signal` (SIGTERM by default) and waits for the exit. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<Exit>;
  /** SIGKILL, as a crash would. */
  kill(): Promise<Exit>;
}

export interface SpawnOptions {
  env?: Record<string, string | undefined>;
  /** Startup is done when a log line has this `msg`; its `port` field is the service's port. */
  readyMessage?: string;
  timeoutMs?: number;
  /** Echo the service's output, for debugging. */
  echo?: boolean;
}

/**
 * Starts a Node service that logs pino JSON lines and waits until it says it
 * is listening. Only this process is ever signalled, by its PID.
 */
export async function spawnService(entry: string, options: SpawnOptions = {}): Promise<ServiceProcess> {
  const { readyMessage = 'listening', timeoutMs = 15_000, echo = process.env.TEST_ECHO_LOGS === '1' } = options;
  const service = startChild(process.execPath, [entry], {
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const { process: child } = service;
  const logs: Array<Record<string, unknown>> = [];
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
    if (echo) process.stderr.write(chunk);
  });
  // 'exit' may come before the last lines of output are read: a test that reads
  // the logs once the service has exited must see all of them.
  const outputRead = new Promise((resolve) => child.once('close', resolve));
  const exited = service.exited.then(async (exit) => {
    await outputRead;
    return exit;
  });
  const stop = async (signal?: NodeJS.Signals, timeoutMs?: number): Promise<Exit> => {
    await service.stop(signal, timeoutMs);
    return exited;
  };
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${entry} did not start within ${timeoutMs} ms\n${stderr}`)), timeoutMs);
    void exited.then((exit) => {
      clearTimeout(timer);
      const lastLogs = logs.slice(-5).map((l) => JSON.stringify(l)).join('\n');
      reject(new Error(`${entry} exited during startup (${JSON.stringify(exit)})\n${stderr}${lastLogs}`));
    });
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (echo) process.stderr.write(`${line}\n`);
      const entryLog = parseLine(line);
      logs.push(entryLog);
      if (entryLog.msg === readyMessage && typeof entryLog.port === 'number') {
        clearTimeout(timer);
        resolve(entryLog.port);
      }
    });
  });
  return { pid: service.pid, port, logs, exited, stop, kill: () => stop('SIGKILL', 5000) };
}

function parseLine(line: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(line);
    if (typeof value === 'object' && value !== null) return value as Record<string, unknown>;
  } catch {
    // not JSON
  }
  return { raw: line };
}
