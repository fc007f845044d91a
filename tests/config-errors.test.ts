import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { GATEWAY_ENTRY } from './helpers/gateways.js';

const ARCHIVER_ENTRY = fileURLToPath(new URL('../services/archiver/dist/main.js', import.meta.url));

/** Starts a service with only these variables set (and PATH), as an operator with a typo would. */
function start(entry: string, env: Record<string, string>): { status: number | null; stderr: string } {
  const result = spawnSync(process.execPath, [entry], { env: { PATH: process.env.PATH, ...env }, encoding: 'utf8', timeout: 10_000 });
  return { status: result.status, stderr: result.stderr };
}

describe('a bad setting stops a service before it starts, naming the variable', () => {
  it('the gateway: a port that is not a number', () => {
    const { status, stderr } = start(GATEWAY_ENTRY, { PORT: 'eighty', DEV_IDENTITY: 'on' });
    expect(status).toBe(2);
    expect(stderr).toMatch(/^configuration error: PORT\b/m);
  });

  it('the gateway: an archive without a Redis to archive from', () => {
    const { status, stderr } = start(GATEWAY_ENTRY, { DATABASE_URL: 'postgres://localhost/chat', DEV_IDENTITY: 'on' });
    expect(status).toBe(2);
    expect(stderr).toMatch(/^configuration error: .*DATABASE_URL/m);
  });

  it('the archiver: no DATABASE_URL', () => {
    const { status, stderr } = start(ARCHIVER_ENTRY, { REDIS_URL: 'redis://127.0.0.1:1' });
    expect(status).toBe(2);
    expect(stderr).toMatch(/^configuration error: DATABASE_URL/m);
  });
});
