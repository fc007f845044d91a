// The processes a benchmark starts: tracked, stopped by PID at the end, on error and on Ctrl-C.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { childPids } from '../../packages/proc/dist/index.js';

export const root = fileURLToPath(new URL('../../', import.meta.url));
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const log = (line) => process.stderr.write(`${line}\n`);

export const children = new Set();

/** `cwd`: another checkout of this repository, to run its build (bench/fanout.mjs --against). */
export function start(command, args, { env = {}, stdout = 'ignore', cwd = root } = {}) {
  const child = spawn(command, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', stdout, 'inherit'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** SIGKILL to a process and its children (the load generator's workers), by PID. */
export function killTree(pid) {
  for (const p of [...childPids(pid), pid]) {
    try { process.kill(p, 'SIGKILL'); } catch { /* gone */ }
  }
}

/** Stops everything still running: load generators (with their workers) at once, the rest by stop(). */
export async function stopEverything() {
  for (const child of children) if (child.loadgen && child.exitCode === null) killTree(child.pid);
  await stop([...children]);
}

/** SIGTERM by PID, SIGKILL after 10 s; resolves once every one has exited. */
export async function stop(list) {
  await Promise.all(list.map((child) => new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', resolve);
    try { process.kill(child.pid, 'SIGTERM'); } catch { return resolve(); }
    setTimeout(() => { try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ } }, 10_000).unref();
  })));
}

/**
 * A benchmark's scratch directory, cleaned up with every process it started on
 * Ctrl-C or SIGTERM, and a deadline after which it stops everything and fails.
 */
export function benchScratch(name, deadlineMinutes) {
  const tmp = mkdtempSync(join(tmpdir(), `bench-${name}-`));
  const onSignal = async () => { await stopEverything(); rmSync(tmp, { recursive: true, force: true }); process.exit(130); };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  setTimeout(async () => { log(`${name} bench: over ${deadlineMinutes} minutes, stopping`); await stopEverything(); process.exit(1); }, deadlineMinutes * 60_000).unref();
  return tmp;
}
