import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { TestClient, freePort, uniquePrefix, waitFor } from '@chat/testkit';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { run } from './helpers/tools.js';

const root = fileURLToPath(new URL('../', import.meta.url));
const hasPodman = spawnSync('sh', ['-c', 'command -v podman']).status === 0;
if (!hasPodman && process.env.CI) throw new Error('podman is required in CI: .ci/run installs it (../shared/tools/container-base.sh)');
const IMAGE = 'localhost/chat-gateway:test';
const name = `chat-gateway-test-${process.pid}`;

async function podman(...args: string[]): Promise<string> {
  const result = await run('podman', args);
  if (result.status !== 0) throw new Error(`podman ${args.join(' ')} failed:\n${result.output}`);
  return result.output.trim();
}

describe.skipIf(!hasPodman)('the Dockerfile, built and run for real (podman, host network)', () => {
  afterAll(async () => {
    await run('podman', ['rm', '-f', name]);
  });

  it('builds a small image with no sources, tests or dev tools', async () => {
    const build = await run('podman', ['build', '--network', 'host', '--format', 'docker', '-t', IMAGE, root]);
    expect(build.status, build.output.slice(-3000)).toBe(0);
    const inspect = (format: string) => podman('image', 'inspect', IMAGE, '--format', format);
    expect(await inspect('{{.Config.User}}')).toBe('node');
    expect(JSON.parse(await inspect('{{json .Config.Cmd}}'))).toEqual(['node', 'services/gateway/dist/main.js']);
    expect(await inspect('{{json .Config.Healthcheck.Test}}')).toContain('/healthz');
    const listing = await podman('run', '--rm', '--network', 'host', '--entrypoint', 'sh', IMAGE, '-c',
      "cd /app && find . -path ./node_modules -prune -o -type f -print | sort && ls node_modules | tr '\\n' ' '");
    expect(listing).not.toMatch(/\.ts\n|\/src\/|\/test\/|^\.\/tests\//m);
    expect(listing).toContain('./services/gateway/dist/main.js');
    expect(listing).toContain('./services/gateway/dist/public/app.js'); // the chat page
    expect(listing).toContain('./services/archiver/dist/main.js'); // the archiver runs from the same image
    expect(listing).not.toMatch(/\b(typescript|vitest|testcontainers|@types)\b/);
    const size = Number(await podman('image', 'inspect', IMAGE, '--format', '{{.Size}}'));
    console.log(`image size: ${(size / 1e6).toFixed(0)} MB`);
  }, 600_000);

  it('serves /healthz and chat as a non-root user, and stops promptly on SIGTERM with clients closed 1001', async () => {
    const port = await freePort();
    await podman('run', '-d', '--network', 'host', '--name', name,
      '-e', `PORT=${port}`, '-e', 'HOST=127.0.0.1', '-e', `REDIS_URL=${inject('redisUrl')}`,
      '-e', `REDIS_PREFIX=${uniquePrefix('container')}`, '-e', 'NODE_ID=in-a-container', IMAGE);
    const base = `http://127.0.0.1:${port}`;
    await waitFor(async () => (await fetch(`${base}/healthz`)).ok, { timeoutMs: 30_000, what: 'healthz' });
    expect(await podman('exec', name, 'id', '-u')).not.toBe('0');
    expect(await (await fetch(`${base}/`)).text()).toContain('<title>Chat</title>');
    expect(await podman('exec', name, 'id', '-un')).toBe('node');

    const client = await TestClient.connect(`ws://127.0.0.1:${port}/ws`, 'boxed');
    expect(client.welcome.node).toBe('in-a-container');
    await client.request({ type: 'join', room: 'container' });
    await client.request({ type: 'send', room: 'container', text: 'hello from outside' });
    await client.waitFor((f) => f.type === 'message' && f.text === 'hello from outside');

    const started = Date.now();
    await podman('stop', '-t', '10', name);
    const took = Date.now() - started;
    expect((await client.closed).code).toBe(1001);
    expect(took).toBeLessThan(5000);
    expect(await podman('inspect', name, '--format', '{{.State.ExitCode}}')).toBe('0');
  }, 120_000);
});
