import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';

describe('loadConfig', () => {
  it('has working defaults: a single node on the in-process broker', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({ port: 8080, host: '0.0.0.0', redis: undefined, historySize: 1000, rateLimitBurst: 100 });
    expect(config.rateLimitPerSec).toBeGreaterThanOrEqual(20);
    expect(Object.isFrozen(config)).toBe(true);
  });

  it.each([
    ['PORT', 'eighty'],
    ['PORT', '70000'],
    ['HISTORY_SIZE', '0'],
    ['HISTORY_SIZE', '1.5'],
    ['RATE_LIMIT_PER_SEC', '-1'],
    ['LOG_LEVEL', 'loud'],
    ['NODE_ID', 'has space'],
    ['REDIS_URL', 'not a url'],
    ['REDIS_URL', 'http://localhost:6379'],
    ['IDLE_TIMEOUT_S', '2'],
  ])('refuses %s=%s with a message that names the variable', (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(new RegExp(`^${name} `));
  });

  it('never echoes a Redis password in its error', () => {
    expect(() => loadConfig({ REDIS_URL: 'http://user:s3cret@host' })).toThrow(/\*\*\*/);
    expect(() => loadConfig({ REDIS_URL: 'http://user:s3cret@host' })).not.toThrow(/s3cret/);
  });

  it('checks settings against each other', () => {
    expect(() => loadConfig({ MAX_TEXT_LENGTH: '5000', MAX_FRAME_BYTES: '4096' })).toThrow(/MAX_TEXT_LENGTH/);
    expect(() => loadConfig({ HISTORY_SIZE: '10', JOIN_HISTORY: '11' })).toThrow(/JOIN_HISTORY/);
  });

  it('refuses a REDIS_PREFIX with braces, which would take the rooms off their own hash slots', () => {
    expect(() => loadConfig({ REDIS_PREFIX: 'app{1}:' })).toThrow(/REDIS_PREFIX must not contain/);
    expect(loadConfig({ REDIS_PREFIX: 'app-1:' }).redisPrefix).toBe('app-1:');
  });

  it('is documented in docs/configuration.md, every variable of it', () => {
    const source = readFileSync(new URL('../src/config.ts', import.meta.url), 'utf8');
    const readme = readFileSync(new URL('../../../docs/configuration.md', import.meta.url), 'utf8');
    const names = [...source.matchAll(/read\.\w+\('([A-Z_]+)'/g)].map((m) => m[1]!);
    expect(names.length).toBeGreaterThan(10);
    for (const name of names) expect(readme, `docs/configuration.md lacks ${name}`).toContain(`\`${name}\``);
  });
});
