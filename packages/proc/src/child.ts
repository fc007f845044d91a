import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A child process, only ever signalled by its own PID. */
export interface Child {
  readonly pid: number;
  readonly process: ChildProcess;
  readonly exited: Promise<Exit>;
  /** Sends `signal` (SIGTERM), then SIGKILL after `timeoutMs` (15 s); resolves with how it ended. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<Exit>;
  kill(): Promise<Exit>;
}

/** Starts `command`; `options` as node's spawn (stdio ignored unless given). */
export function startChild(command: string, args: readonly string[], options: SpawnOptions = {}): Child {
  const child = spawn(command, args, { stdio: 'ignore', ...options });
  const exited = new Promise<Exit>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const stop = async (signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 15_000): Promise<Exit> => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    try {
      return await exited;
    } finally {
      clearTimeout(timer);
    }
  };
  return { pid: child.pid!, process: child, exited, stop, kill: () => stop('SIGKILL', 5000) };
}

/** Stops them all at once (SIGTERM, then SIGKILL after `timeoutMs`). */
export async function stopAll(children: readonly Child[], timeoutMs = 15_000): Promise<void> {
  await Promise.all(children.map((c) => c.stop('SIGTERM', timeoutMs)));
}
