import { existsSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { freeStablePort, startRedisServer, type RedisServer, uniquePrefix, waitFor } from '@chat/testkit';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { readyz, startGateway, type GatewayProcess } from './helpers/gateways.js';

const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const artifacts = fileURLToPath(new URL('../artifacts/', import.meta.url));
if (!existsSync(CHROMIUM) && process.env.CI) throw new Error('chromium is required in CI: apt-get install chromium (.ci/run does)');

describe.skipIf(!existsSync(CHROMIUM))('the chat page in headless Chromium, on a three-gateway cluster', () => {
  const env = { REDIS_PREFIX: uniquePrefix('browser'), PRESENCE_TTL_MS: '2000' };
  let gateways: GatewayProcess[];
  let browser: Browser;
  let port1: number;

  beforeAll(async () => {
    port1 = await freeStablePort();
    const redis = inject('redisUrl');
    gateways = await Promise.all([
      startGateway({ ...env, REDIS_URL: redis, NODE_ID: 'gw-1', PORT: String(port1) }),
      startGateway({ ...env, REDIS_URL: redis, NODE_ID: 'gw-2' }),
      startGateway({ ...env, REDIS_URL: redis, NODE_ID: 'gw-3' }),
    ]);
    await waitFor(async () => (await Promise.all(gateways.map(readyz))).every((s) => s === 200), { what: 'ready' });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
    mkdirSync(artifacts, { recursive: true });
  });
  afterAll(async () => {
    await browser?.close();
    await Promise.all(gateways.map((g) => g.stop()));
  });

  async function enter(page: Page, gateway: GatewayProcess, name: string): Promise<void> {
    await page.goto(`${gateway.httpUrl}/`);
    await page.fill('#name', name);
    await page.fill('#first-room', 'lobby');
    await page.click('#login button');
    await page.waitForSelector('#state[data-state="connected"]');
  }

  const messageCount = (page: Page, text: string) => page.locator('#messages li', { hasText: text }).count();

  it('chats across gateways with presence and typing, and recovers what it missed while its gateway was down', async () => {
    const alice = await browser.newPage({ viewport: { width: 1000, height: 640 } });
    const bob = await browser.newPage({ viewport: { width: 390, height: 740 } });
    await enter(alice, gateways[0]!, 'alice');
    await enter(bob, gateways[1]!, 'bob');
    expect(await alice.textContent('#state')).toContain('gw-1');
    expect(await bob.textContent('#state')).toContain('gw-2');

    // What one types appears on the other; presence shows both.
    await alice.fill('#text', 'Hello from gateway one');
    await alice.press('#text', 'Enter');
    await bob.waitForSelector('#messages li:has-text("Hello from gateway one")');
    await alice.waitForSelector('#members li:has-text("bob")');
    await bob.click('#menu'); // the phone layout keeps rooms and people behind the menu
    await bob.waitForSelector('#members li:has-text("alice")');
    await bob.screenshot({ path: `${artifacts}browser-bob-menu.png` });
    await bob.click('#rooms li:has-text("lobby")');

    // Typing shows on the other page only.
    await bob.waitForTimeout(1600);
    await bob.type('#text', 'I am typ');
    await alice.waitForSelector('#typing:has-text("bob is typing")');
    expect(await bob.textContent('#typing')).toBe('');
    await bob.fill('#text', '');
    await alice.screenshot({ path: `${artifacts}browser-alice-chatting.png` });
    await bob.screenshot({ path: `${artifacts}browser-bob-chatting.png` });

    // Alice's gateway dies: her page says so, Bob keeps talking meanwhile.
    await gateways[0]!.kill();
    await alice.waitForSelector('#state[data-state="reconnecting"]');
    await alice.screenshot({ path: `${artifacts}browser-alice-reconnecting.png` });
    for (const text of ['While you were away 1', 'While you were away 2', 'While you were away 3']) {
      await bob.fill('#text', text);
      await bob.press('#text', 'Enter');
      await bob.waitForSelector(`#messages li:has-text("${text}")`);
    }

    // It comes back (same port): the page reconnects, rejoins with since and shows what it missed, once.
    gateways[0] = await startGateway({ ...env, REDIS_URL: inject('redisUrl'), NODE_ID: 'gw-1', PORT: String(port1) });
    await alice.waitForSelector('#state[data-state="connected"]', { timeout: 20_000 });
    for (const text of ['While you were away 1', 'While you were away 2', 'While you were away 3']) {
      await alice.waitForSelector(`#messages li:has-text("${text}")`);
      expect(await messageCount(alice, text)).toBe(1);
    }
    expect(await messageCount(alice, 'Hello from gateway one')).toBe(1);
    await alice.fill('#text', 'Back again');
    await alice.press('#text', 'Enter');
    await bob.waitForSelector('#messages li:has-text("Back again")');
    await alice.screenshot({ path: `${artifacts}browser-alice-recovered.png` });
    await bob.screenshot({ path: `${artifacts}browser-bob-final.png` });
  }, 90_000);
});

describe.skipIf(!existsSync(CHROMIUM))('the chat page when Redis loses the room\'s history', () => {
  let redis: RedisServer;
  let gateway: GatewayProcess;
  let browser: Browser;
  beforeAll(async () => {
    redis = await startRedisServer(); // memory only: a restart forgets everything
    gateway = await startGateway({ REDIS_URL: redis.url, NODE_ID: 'gw-1', BROKER_TIMEOUT_MS: '1000' });
    await waitFor(async () => (await readyz(gateway)) === 200, { what: 'ready' });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
  });
  afterAll(async () => {
    await browser?.close();
    await gateway?.stop();
    await redis?.cleanup();
  });

  it('says that some earlier messages could not be recovered', async () => {
    const page = await browser.newPage({ viewport: { width: 1000, height: 640 } });
    await page.goto(`${gateway.httpUrl}/`);
    await page.fill('#name', 'carol');
    await page.fill('#first-room', 'lobby');
    await page.click('#login button');
    await page.waitForSelector('#state[data-state="connected"]');
    await page.fill('#text', 'Soon forgotten');
    await page.press('#text', 'Enter');
    await page.waitForSelector('#messages li:has-text("Soon forgotten")');

    await redis.kill();
    await redis.start();
    // The gateway finds the room's history gone and closes the page's socket; the page rejoins and is told.
    await page.waitForSelector('#messages li.notice:has-text("some earlier messages could not be recovered")', { timeout: 20_000 });
    await page.waitForSelector('#state[data-state="connected"]');
    expect(await page.locator('#messages li', { hasText: 'Soon forgotten' }).count()).toBe(1);
    await page.screenshot({ path: `${artifacts}browser-history-lost.png` });
  }, 60_000);
});
