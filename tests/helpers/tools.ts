import { spawnSync } from 'node:child_process';

/** Fails with what to install when a tool the tests rely on is missing (CI installs it). */
export function requireTool(command: string, install: string): void {
  const found = spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
  if (!found) throw new Error(`${command} is not on PATH: install it (${install}); .ci/run does`);
}

export function run(command: string, args: string[], input?: string): { status: number | null; output: string } {
  const result = spawnSync(command, args, { input, encoding: 'utf8' });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}
