import { existsSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { uniquePrefix, waitFor } from '@chat/testkit';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { readyz, startGateway, type GatewayProcess } from './helpers/gateways.js';

/*
 * Edits, deletes and reactions on the chat page (issue 24), in headless
 * Chromium on two gateways: alice edits her message, bob (phone-sized) reacts
 * to it, a moderator deletes bob's message; everyone sees the same.
 */
const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const artifacts = fileURLToPath(new URL('../artifacts/', import.meta.url));
if (!existsSync(CHROMIUM) && process.env.CI) throw new Error('chromium is required in CI: apt-get install chromium (.ci/run does)');

const DESKTOP = { width: 1000, height: 640 };
const PHONE = { width: 390, height: 844 };

describe.skipIf(!existsSync(CHROMIUM))('editing, deleting and reacting on the chat page, two gateways', () => {
  const env = { REDIS_PREFIX: uniquePrefix('changes-page') };
  const ROOM = 'changes-lobby';
  let gateways: GatewayProcess[];
  let browser: Browser;

  beforeAll(async () => {
    const redis = inject('redisUrl');
    gateways = await Promise.all([
      startGateway({ ...env, REDIS_URL: redis, NODE_ID: 'gw-1' }),
      startGateway({ ...env, REDIS_URL: redis, NODE_ID: 'gw-2' }),
    ]);
    await waitFor(async () => (await Promise.all(gateways.map(readyz))).every((s) => s === 200), { what: 'gateways ready' });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
    mkdirSync(artifacts, { recursive: true });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await Promise.all((gateways ?? []).map((g) => g.stop()));
  });

  async function enter(viewport: typeof DESKTOP, gateway: GatewayProcess, name: string, query = ''): Promise<Page> {
    const page = await (await browser.newContext({ viewport })).newPage();
    await page.goto(`${gateway.httpUrl}/${query}`);
    await page.fill('#name', name);
    await page.fill('#first-room', ROOM);
    await page.click('#login button');
    await page.waitForSelector('#state[data-state="connected"]');
    return page;
  }
  async function write(page: Page, text: string): Promise<void> {
    await page.fill('#text', text);
    await page.press('#text', 'Enter');
    await page.waitForSelector(`#messages li:has-text("${text}")`);
  }
  const row = (page: Page, text: string) => page.locator('#messages li', { hasText: text });
  const shot = (page: Page, name: string) => page.screenshot({ path: `${artifacts}changes-${name}.png` });

  it('alice edits her message, bob reacts to it from a phone, a moderator deletes bob\'s: every page shows it', async () => {
    const alice = await enter(DESKTOP, gateways[0]!, 'alice');
    const bob = await enter(PHONE, gateways[1]!, 'bob');
    const mod = await enter(DESKTOP, gateways[1]!, 'moira', `?mod=${ROOM}`);
    await write(alice, 'helo wrld');
    await write(bob, 'buy cheap watches');
    for (const page of [alice, bob, mod]) await row(page, 'buy cheap watches').waitFor();

    // Alice may edit and delete only her own message; nobody but a moderator deletes another's.
    expect(await row(alice, 'helo wrld').locator('.tool.edit').count()).toBe(1);
    expect(await row(alice, 'buy cheap watches').locator('.tool').count()).toBe(0);
    expect(await row(mod, 'buy cheap watches').locator('.tool.delete').count()).toBe(1);

    await row(alice, 'helo wrld').hover();
    await row(alice, 'helo wrld').locator('.tool.edit').click();
    await alice.fill('#text', 'hello world');
    await alice.press('#text', 'Enter');
    for (const page of [alice, bob, mod]) await page.waitForSelector('#messages li:has-text("hello world") .edited');

    await row(bob, 'hello world').locator('.reaction[data-reaction="heart"]').click();
    for (const page of [alice, bob, mod]) await page.waitForSelector('#messages li:has-text("hello world") .reaction[data-reaction="heart"]:has-text("1")');
    expect(await row(bob, 'hello world').locator('.reaction.mine').count()).toBe(1);
    expect(await row(alice, 'hello world').locator('.reaction.mine').count()).toBe(0);

    await row(mod, 'buy cheap watches').hover();
    await row(mod, 'buy cheap watches').locator('.tool.delete').click();
    for (const page of [alice, bob, mod]) {
      await page.waitForSelector('#messages li.deleted:has-text("message deleted")');
      expect(await page.locator('#messages li:has-text("buy cheap watches")').count()).toBe(0);
    }
    await shot(alice, 'desktop');
    await shot(bob, 'phone');

    // A reload reads the room again: the same, from history.
    await bob.reload();
    await bob.fill('#name', 'bob');
    await bob.fill('#first-room', ROOM);
    await bob.click('#login button');
    await bob.waitForSelector('#messages li:has-text("hello world") .reaction.mine:has-text("1")');
    await bob.waitForSelector('#messages li.deleted:has-text("message deleted")');
  });
});
