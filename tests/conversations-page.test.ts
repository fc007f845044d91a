import { existsSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { uniquePrefix, waitFor } from '@chat/testkit';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { readyz, startGateway, type GatewayProcess } from './helpers/gateways.js';

/*
 * Conversations on the chat page (issue 23), in headless Chromium on two
 * gateways: alice clicks bob's name and writes; both of bob's tabs (one on a
 * desktop, one phone-sized, on different gateways) show the badge; bob reads
 * in the phone tab and the badge clears in the other.
 */
const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const artifacts = fileURLToPath(new URL('../artifacts/', import.meta.url));
if (!existsSync(CHROMIUM) && process.env.CI) throw new Error('chromium is required in CI: apt-get install chromium (.ci/run does)');

const DESKTOP = { width: 1000, height: 640 };
const PHONE = { width: 390, height: 844 };

describe.skipIf(!existsSync(CHROMIUM))('conversations with unread badges on the chat page, two gateways', () => {
  const env = { REDIS_PREFIX: uniquePrefix('conversations-page'), PRESENCE_TTL_MS: '2000' };
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

  async function enter(page: Page, gateway: GatewayProcess, name: string): Promise<void> {
    await page.goto(`${gateway.httpUrl}/`);
    await page.fill('#name', name);
    await page.fill('#first-room', 'lobby');
    await page.click('#login button');
    await page.waitForSelector('#state[data-state="connected"]');
  }

  const shot = (page: Page, name: string) => page.screenshot({ path: `${artifacts}conversations-${name}.png` });
  const withAlice = '#conversations li[data-with="alice"]';
  const badgeOf = (page: Page) => page.locator(`${withAlice} .badge`);
  async function write(page: Page, text: string): Promise<void> {
    await page.fill('#text', text);
    await page.press('#text', 'Enter');
    await page.waitForSelector(`#messages li:has-text("${text}")`);
  }

  it('alice opens a conversation with bob by his name; both of bob\'s tabs show the badge; a read in one clears it in the other', async () => {
    const alice = await (await browser.newContext({ viewport: DESKTOP })).newPage();
    // Bob's two tabs: one browser (one localStorage), one tab on each gateway; the second phone-sized.
    const bobs = await browser.newContext({ viewport: DESKTOP });
    const bobDesk = await bobs.newPage();
    const bobPhone = await bobs.newPage();
    await bobPhone.setViewportSize(PHONE);
    await enter(bobDesk, gateways[0]!, 'bob');
    await enter(bobPhone, gateways[1]!, 'bob');
    await enter(alice, gateways[1]!, 'alice');
    for (const page of [alice, bobDesk, bobPhone]) expect(await page.evaluate('document.visibilityState')).toBe('visible'); // reads go only to a room on screen

    // Alice clicks bob in the room's people: the stored conversation (open), not an ephemeral dm.
    await alice.click('#members li:has-text("bob")');
    await alice.waitForSelector('#title:text-is("@bob")');
    const room = await alice.getAttribute('#conversations li[data-with="bob"]', 'data-room');
    expect(room).toMatch(/^dm:[0-9a-f]{40}$/);
    expect(await alice.isHidden('#dm-section')).toBe(true);
    await write(alice, 'Hi bob, got a minute?');
    await write(alice, 'About the release notes');

    // Bob's tabs were never in the room: the badge (and the total) come from the gateway's counts.
    for (const page of [bobDesk, bobPhone]) {
      await page.waitForSelector(`${withAlice} .badge:text-is("2")`, { state: 'attached' }); // behind the menu on the phone
      await waitFor(async () => (await page.title()) === '(2) Chat', { what: 'the total in the tab title' });
    }
    expect(await bobDesk.textContent(`${withAlice} .preview`)).toBe('About the release notes');
    expect(await bobDesk.textContent('#total')).toBe('2');
    expect(await bobPhone.isVisible('#menu-badge')).toBe(true); // on a phone the list is behind the menu: the total is on it
    expect(await bobPhone.textContent('#menu-badge')).toBe('2');
    expect(await alice.isHidden('#total')).toBe(true); // her own messages count for nobody else
    await shot(bobDesk, 'bob-desktop-badge');
    await shot(bobPhone, 'bob-phone-room-badge');

    // The phone: the list is a view of its own; the conversation another.
    await bobPhone.click('#menu');
    await bobPhone.waitForSelector(`${withAlice} .badge:text-is("2")`, { state: 'visible' });
    await shot(bobPhone, 'bob-phone-list');
    await bobPhone.click(withAlice);
    await bobPhone.waitForSelector('#title:text-is("@alice")');
    await bobPhone.waitForSelector('#messages li:has-text("About the release notes")', { state: 'visible' });
    expect(await bobPhone.isHidden('#side')).toBe(true);

    // Reading it there cleared the badge in bob's other tab, on the other gateway, and in this one.
    await bobDesk.waitForSelector(`${withAlice} .badge`, { state: 'detached' });
    await waitFor(async () => (await bobDesk.title()) === 'Chat', { what: 'no total in the desktop tab\'s title' });
    expect(await bobDesk.isHidden('#total')).toBe(true);
    await bobPhone.waitForSelector('#menu-badge', { state: 'hidden' });
    await shot(bobPhone, 'bob-phone-conversation');
    await shot(bobDesk, 'bob-desktop-read-elsewhere');

    // Bob answers from the phone; alice is in the conversation, so she reads it at once and gets no badge.
    await write(bobPhone, 'Sure, calling you in five');
    await alice.waitForSelector('#messages li:has-text("Sure, calling you in five")');
    // Her count for it may show 1 for a moment (the message's count can come before the answer to her read): then none.
    await alice.waitForSelector('#conversations li[data-with="bob"] .preview:text-is("Sure, calling you in five")');
    await alice.waitForSelector('#conversations li[data-with="bob"] .badge', { state: 'detached' });
    await waitFor(async () => (await alice.title()) === 'Chat', { what: 'no total in alice\'s title' });
    // Alice writes again while bob has the conversation on his phone's screen: the phone reads it,
    // and the desktop tab's badge, if it showed one, goes again.
    await write(alice, 'Great, thanks!');
    await bobPhone.waitForSelector('#messages li:has-text("Great, thanks!")');
    await bobDesk.waitForSelector(`${withAlice} .preview:text-is("Great, thanks!")`);
    await bobDesk.waitForSelector(`${withAlice} .badge`, { state: 'detached' });
    await shot(alice, 'alice-desktop');

    // A reload of bob's desktop tab starts from the gateway's list: nothing unread.
    await bobDesk.reload();
    await enter(bobDesk, gateways[0]!, 'bob');
    await bobDesk.waitForSelector(`${withAlice} .preview:text-is("Great, thanks!")`);
    expect(await badgeOf(bobDesk).count()).toBe(0);
    expect(await bobDesk.isHidden('#total')).toBe(true);
    await shot(bobDesk, 'bob-desktop-reloaded');
  }, 90_000);
});
