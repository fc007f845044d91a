import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, uniquePrefix, waitFor } from '@chat/testkit';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { readyz, startGateway, type GatewayProcess } from './helpers/gateways.js';
import { scrape } from './helpers/metrics.js';
import { requireTool } from './helpers/tools.js';

/*
 * The chat page where WebSockets do not work, through HAProxy in front of two
 * gateways with round robin and no stickiness of any kind: one user's browser
 * has no WebSocket at all, another's opens one that then stalls (a proxy that
 * takes the upgrade and forwards nothing), a third chats on a WebSocket. They
 * see each other's messages; each page says which transport it uses.
 */
const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
if (!existsSync(CHROMIUM) && process.env.CI) throw new Error('chromium is required in CI: apt-get install chromium (.ci/run does)');

/**
 * Round robin per request, no cookie, no stick table, no hash: a stream's POSTs
 * land on either gateway. Timeouts above the 45 s after which a client gives a
 * silent stream up; http-no-delay so that events are not held back for fuller packets.
 */
function haproxyConfig(lbPort: number, gateways: GatewayProcess[]): string {
  return `global
  maxconn 4000

defaults
  mode http
  timeout connect 5s
  timeout client 75s
  timeout server 75s
  timeout tunnel 1h
  timeout http-request 10s

frontend chat
  bind 127.0.0.1:${lbPort}
  default_backend gateways

backend gateways
  balance roundrobin
  option http-no-delay
${gateways.map((g) => `  server ${g.nodeId} 127.0.0.1:${g.port} check inter 1s`).join('\n')}
`;
}

describe.skipIf(!existsSync(CHROMIUM))('the chat page without WebSockets, behind HAProxy with no stickiness', () => {
  const env = { REDIS_PREFIX: uniquePrefix('sse-page'), PRESENCE_TTL_MS: '2000' };
  const shots = mkdtempSync(join(tmpdir(), 'chat-sse-page-'));
  let gateways: GatewayProcess[];
  let haproxy: ChildProcess | undefined;
  let lb: string;
  let browser: Browser;
  const contexts: BrowserContext[] = [];

  beforeAll(async () => {
    requireTool('haproxy', 'apt-get install haproxy');
    const redis = inject('redisUrl');
    gateways = await Promise.all([
      startGateway({ ...env, REDIS_URL: redis, NODE_ID: 'gw-1' }),
      startGateway({ ...env, REDIS_URL: redis, NODE_ID: 'gw-2' }),
    ]);
    await waitFor(async () => (await Promise.all(gateways.map(readyz))).every((s) => s === 200), { what: 'gateways ready' });
    const lbPort = await freePort();
    const config = join(shots, 'haproxy.cfg');
    writeFileSync(config, haproxyConfig(lbPort, gateways));
    const checked = spawnSync('haproxy', ['-c', '-q', '-f', config], { encoding: 'utf8' });
    expect(checked.status, checked.stderr).toBe(0);
    haproxy = spawn('haproxy', ['-f', config, '-db'], { stdio: 'ignore' });
    lb = `http://127.0.0.1:${lbPort}`;
    await waitFor(async () => (await fetch(`${lb}/readyz`).then((r) => r.status, () => 0)) === 200, { what: 'HAProxy' });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
    mkdirSync(shots, { recursive: true });
    console.log(`screenshots in ${shots}`);
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    if (haproxy?.pid !== undefined && haproxy.exitCode === null) {
      const exited = new Promise((resolve) => haproxy!.once('exit', resolve));
      process.kill(haproxy.pid, 'SIGTERM');
      await exited;
    }
    await Promise.all((gateways ?? []).map((g) => g.stop()));
  });

  async function newPage(viewport: { width: number; height: number }, prepare?: (context: BrowserContext) => Promise<unknown>): Promise<Page> {
    const context = await browser.newContext({ viewport });
    contexts.push(context);
    await prepare?.(context);
    return context.newPage();
  }

  async function enter(page: Page, name: string, room: string): Promise<void> {
    await page.goto(`${lb}/`);
    await page.fill('#name', name);
    await page.fill('#first-room', room);
    await page.click('#login button');
  }

  const badge = (page: Page) => page.locator('#state');

  it('chats between a page without WebSocket (SSE) and one on a WebSocket; a page whose WebSocket stalls falls back and remembers it', async () => {
    const room = 'lobby'; // the gateways' REDIS_PREFIX is this run's own
    // Alice's browser has no WebSocket at all.
    const alice = await newPage({ width: 1000, height: 640 }, (context) => context.addInitScript(() => {
      delete (globalThis as { WebSocket?: unknown }).WebSocket;
    }));
    // Bob's is an ordinary one, on a phone.
    const bob = await newPage({ width: 390, height: 740 });

    await enter(alice, 'alice', room);
    await alice.waitForSelector('#state[data-state="connected"]');
    expect(await alice.evaluate(() => typeof (globalThis as { WebSocket?: unknown }).WebSocket)).toBe('undefined');
    await enter(bob, 'bob', room);
    await bob.waitForSelector('#state[data-state="connected"]');
    expect(await badge(alice).textContent()).toMatch(/^connected · gw-[12] · SSE$/);
    expect(await badge(alice).getAttribute('data-transport')).toBe('sse');
    expect(await badge(bob).getAttribute('data-transport')).toBe('websocket');
    expect(await badge(bob).textContent()).toMatch(/^connected · gw-[12] · WebSocket$/);

    // Each sees the other's messages, once.
    for (let i = 1; i <= 3; i++) {
      await alice.fill('#text', `From SSE ${i}`);
      await alice.press('#text', 'Enter');
    }
    await bob.fill('#text', 'From a WebSocket');
    await bob.press('#text', 'Enter');
    for (const page of [alice, bob]) {
      for (const text of ['From SSE 1', 'From SSE 2', 'From SSE 3', 'From a WebSocket']) {
        await page.waitForSelector(`#messages li:has-text("${text}")`);
        expect(await page.locator('#messages li', { hasText: text }).count()).toBe(1);
      }
    }
    const order = await alice.locator('#messages li').allTextContents();
    expect(order.filter((t) => t.startsWith('aliceFrom SSE')).map((t) => t.slice(5, 15))).toEqual(['From SSE 1', 'From SSE 2', 'From SSE 3']);
    // Presence and typing cross too (alice's typing goes out in a POST).
    await alice.waitForSelector('#members li:has-text("bob")');
    await alice.waitForTimeout(1600); // the page says "typing" at most every 1.5 s, and it did while the messages were written
    await alice.type('#text', 'I am typ');
    await bob.waitForSelector('#typing:has-text("alice is typing")');
    await alice.fill('#text', '');
    await alice.screenshot({ path: join(shots, 'alice-sse.png') });
    await bob.screenshot({ path: join(shots, 'bob-websocket.png') });
    await bob.click('#menu');
    await bob.waitForSelector('#members li:has-text("alice")');
    await bob.screenshot({ path: join(shots, 'bob-websocket-menu.png') });

    // With no stickiness, some of alice's POSTs reached the gateway that does not hold her stream, and were relayed.
    const relayed = await Promise.all(gateways.map(async (g) => (await scrape(`${g.httpUrl}/metrics`)).get('chat_sse_posts_total{result="relayed"}') ?? 0));
    expect(relayed.reduce((a, b) => a + b)).toBeGreaterThan(0);

    // Carol's WebSocket opens and then hears nothing (as behind a proxy that stalls upgrades): after the
    // client's welcome timeout (5 s) the page is on SSE, and a reload starts there at once.
    let stalled = 0;
    const carol = await newPage({ width: 1000, height: 640 }, (context) => context.routeWebSocket(/\/ws/, () => { stalled++; }));
    const started = Date.now();
    await enter(carol, 'carol', room);
    await carol.waitForSelector('#state[data-state="connected"]', { timeout: 15_000 });
    expect(Date.now() - started).toBeGreaterThan(4500);
    expect(stalled).toBe(1);
    expect(await badge(carol).getAttribute('data-transport')).toBe('sse');
    await carol.waitForSelector('#messages li:has-text("From a WebSocket")'); // the room's history
    await carol.fill('#text', 'Carol fell back');
    await carol.press('#text', 'Enter');
    await alice.waitForSelector('#messages li:has-text("Carol fell back")');
    await bob.click('#rooms li'); // back from the menu to the room
    await bob.waitForSelector('#messages li:has-text("Carol fell back")');
    await carol.screenshot({ path: join(shots, 'carol-fell-back.png') });
    const reloaded = Date.now();
    await carol.reload();
    await carol.fill('#name', 'carol');
    await carol.fill('#first-room', room);
    await carol.click('#login button');
    await carol.waitForSelector('#state[data-state="connected"]');
    expect(Date.now() - reloaded).toBeLessThan(4000);
    expect(stalled).toBe(1); // no WebSocket tried again while the fallback is remembered
    expect(await badge(carol).getAttribute('data-transport')).toBe('sse');
    await alice.screenshot({ path: join(shots, 'alice-sse-final.png') });
    await bob.screenshot({ path: join(shots, 'bob-websocket-final.png') });
    await bob.setViewportSize({ width: 1000, height: 640 }); // wide enough for the badge to name the gateway and transport
    expect(await badge(bob).textContent()).toMatch(/^connected · gw-[12] · WebSocket$/);
    await bob.screenshot({ path: join(shots, 'bob-websocket-desktop.png') });
  }, 90_000);
});
