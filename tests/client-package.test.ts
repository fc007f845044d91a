import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { uniquePrefix, waitFor } from '@chat/testkit';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { readyz, startGateway, type GatewayProcess } from './helpers/gateways.js';
import { run } from './helpers/tools.js';

/*
 * @chat/client as an application outside this repository gets it: `npm pack`
 * (which puts the wire protocol inside the package), the tarball installed into
 * a scratch project in a temporary directory, then used from Node over both
 * transports against a real gateway, type-checked as a TypeScript consumer
 * would, and bundled for a browser.
 */
const root = fileURLToPath(new URL('../', import.meta.url));
const clientDir = join(root, 'packages/client');
const tsc = join(root, 'node_modules/typescript/bin/tsc');

async function sh(command: string, args: string[], cwd: string, timeoutMs = 120_000): Promise<string> {
  const result = await run(command, args, { cwd, timeoutMs, env: { ...process.env, npm_config_update_notifier: 'false' } });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed (${result.status ?? 'killed'}):\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

/** An application's script: one user on a WebSocket (from `ws`), one on the fallback (global fetch), talking. */
const APP = `
import { ChatClient } from '@chat/client';
import WebSocket from 'ws';

const [wsUrl, room] = process.argv.slice(2);
const onWs = new ChatClient({ url: wsUrl, user: 'pkg-ws', webSocket: (url) => new WebSocket(url) });
const onSse = new ChatClient({ url: wsUrl, user: 'pkg-sse', transports: ['sse'] });
const heard = { ws: [], sse: [] };
onWs.on('message', (m) => heard.ws.push(m.user + ':' + m.text));
onSse.on('message', (m) => heard.sse.push(m.user + ':' + m.text));
await Promise.all([onWs.connect(), onSse.connect()]);
await onWs.join(room);
await onSse.join(room);
const acks = [await onWs.send(room, 'over a websocket'), await onSse.send(room, 'over a stream', { key: 'pkg-key-1' })];
const again = await onSse.send(room, 'over a stream', { key: 'pkg-key-1' }); // the same key: the same message
const deadline = Date.now() + 10_000;
while ((heard.ws.length < 2 || heard.sse.length < 2) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
await new Promise((r) => setTimeout(r, 300)); // time for a duplicate to show, were there one
console.log(JSON.stringify({ transports: [onWs.transport, onSse.transport], heard, ids: acks.map((a) => a.id), again: again.id }));
onWs.close();
onSse.close();
`;

/** What a TypeScript application writes; it must compile against the installed package alone. */
const TYPED = `
import { ChatClient, type MessageFrame, type StateDetail, type TransportName } from '@chat/client';

const client = new ChatClient({ url: 'wss://chat.example.com/ws', token: 'jwt', transports: ['websocket', 'sse'], welcomeTimeoutMs: 3000 });
const seen: MessageFrame[] = [];
client.on('message', (m) => seen.push(m));
client.on('state', (state, detail: StateDetail) => console.log(state, detail.node, detail.transport));
export async function run(): Promise<TransportName | undefined> {
  await client.connect();
  const joined = await client.join('lobby', { since: '1-0' });
  const ack = await client.send(joined.room, 'typed');
  console.log(ack.id.toUpperCase(), client.count('lobby'));
  return client.transport;
}
`;

/** A browser page's entry. */
const BROWSER = `
import { ChatClient } from '@chat/client';
const client = new ChatClient({ url: 'wss://' + location.host + '/ws', user: 'web' });
client.on('state', (s, d) => { document.title = s + ' ' + (d.transport ?? ''); });
client.connect();
`;

describe('@chat/client as an installed package', () => {
  let gateway: GatewayProcess;
  let scratch: string;
  let tarball: string;

  beforeAll(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'chat-client-package-'));
    gateway = await startGateway({ REDIS_URL: inject('redisUrl'), REDIS_PREFIX: uniquePrefix('pkg'), NODE_ID: 'pkg-gw' });
    await waitFor(async () => (await readyz(gateway)) === 200, { what: 'gateway ready' });
    // npm pack runs the package's prepack (build, the protocol put inside) and postpack (the workspace's dist back).
    const output = await sh('npm', ['pack', '--json', '--pack-destination', scratch], clientDir, 180_000);
    const packed = JSON.parse(output.slice(output.search(/^\[/m))) as Array<{ filename: string }>;
    tarball = join(scratch, packed[0]!.filename);
    const app = join(scratch, 'app');
    await sh('mkdir', ['-p', app], scratch);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'outside-app', private: true, type: 'module' }));
    await sh('npm', ['install', tarball, 'ws@^8', '--prefer-offline', '--no-audit', '--no-fund'], app, 180_000);
  }, 300_000);

  afterAll(async () => {
    await gateway?.stop();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('is a self-contained tarball: no dependencies, no workspace package, types beside the code', () => {
    const manifest = JSON.parse(readFileSync(join(scratch, 'app/node_modules/@chat/client/package.json'), 'utf8')) as Record<string, unknown>;
    expect(manifest.private).toBeUndefined();
    expect(manifest.dependencies).toBeUndefined();
    expect(manifest.exports).toMatchObject({ '.': { types: './dist/index.d.ts', default: './dist/index.js' } });
    const installed = join(scratch, 'app/node_modules/@chat/client/dist');
    const files = readdirSync(installed, { recursive: true }).map(String);
    expect(files).toEqual(expect.arrayContaining(['index.js', 'index.d.ts', 'protocol.js', 'protocol.d.ts', join('protocol', 'frames.d.ts')]));
    for (const file of files.filter((f) => /\.(js|ts)$/.test(f))) {
      expect(readFileSync(join(installed, file), 'utf8'), file).not.toMatch(/from\s+['"]@chat\//);
    }
    // The workspace's own build is as it was: it re-exports the workspace package.
    expect(readFileSync(join(clientDir, 'dist/protocol.js'), 'utf8')).toContain("from '@chat/protocol'");
  });

  it('chats from Node over a WebSocket and over the fallback transport, a repeated key acknowledged with the same id', async () => {
    writeFileSync(join(scratch, 'app/app.mjs'), APP);
    const out = await sh(process.execPath, ['app.mjs', gateway.wsUrl, uniquePrefix('pkg-room')], join(scratch, 'app'), 60_000);
    const result = JSON.parse(out.trim().split('\n').at(-1)!) as { transports: string[]; heard: { ws: string[]; sse: string[] }; ids: string[]; again: string };
    expect(result.transports).toEqual(['websocket', 'sse']);
    const both = ['pkg-ws:over a websocket', 'pkg-sse:over a stream'];
    expect(result.heard.ws).toEqual(both);
    expect(result.heard.sse).toEqual(both);
    expect(result.again).toBe(result.ids[1]);
  });

  it('type-checks a strict TypeScript consumer with nothing but the package', async () => {
    const app = join(scratch, 'app');
    writeFileSync(join(app, 'typed.ts'), TYPED);
    writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { strict: true, noEmit: true, module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', lib: ['ES2022', 'DOM'], types: [], skipLibCheck: false },
      files: ['typed.ts'],
    }));
    await sh(process.execPath, [tsc, '-p', app], app, 120_000);
  });

  it('bundles for a browser with esbuild, with no Node built-in in it', async () => {
    const app = join(scratch, 'app');
    writeFileSync(join(app, 'browser.js'), BROWSER);
    const result = await build({
      absWorkingDir: app, entryPoints: ['browser.js'], bundle: true, platform: 'browser', format: 'esm', target: 'es2020',
      write: false, metafile: true, logLevel: 'silent',
    });
    expect(result.warnings).toEqual([]);
    const code = result.outputFiles[0]!.text;
    expect(code).not.toMatch(/["']node:/);
    expect(code).not.toMatch(/\brequire\(/);
    expect(code).not.toMatch(/\bprocess\.|\bBuffer\b/);
    expect(code).toContain('text/event-stream'); // the fallback transport came along
    const inputs = Object.keys(result.metafile.inputs);
    expect(inputs.every((i) => i === 'browser.js' || i.startsWith('node_modules/@chat/client/dist/'))).toBe(true);
  });
});
