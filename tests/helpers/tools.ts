import { spawn, spawnSync } from 'node:child_process';

/** Fails with what to install when a tool the tests rely on is missing (CI installs it). */
export function requireTool(command: string, install: string): void {
  const found = spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
  if (!found) throw new Error(`${command} is not on PATH: install it (${install}); .ci/run does`);
}

export interface RunOptions {
  /** Written to the tool's standard input. */
  input?: string;
  /** Killed (SIGKILL) after this long; its status is then null. */
  timeoutMs?: number;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

export interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
  /** stdout, then stderr: what to show when the status is not the expected one. */
  output: string;
}

/**
 * Runs a tool to its end without blocking the test worker. A worker blocked in
 * spawnSync cannot answer vitest's own calls: an image build of 86 s made them time
 * out after 60 s, and vitest failed the whole run with "Timeout calling onTaskUpdate".
 */
export function run(command: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: 'pipe' });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk; });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk; });
    const timer = options.timeoutMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr, output: `${stdout}${stderr}` });
    });
    child.stdin.on('error', () => {}); // a tool that exits without reading its input
    child.stdin.end(options.input);
  });
}
