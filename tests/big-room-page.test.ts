import { existsSync, mkdirSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { startChild, type Child } from '@chat/proc';
import { uniquePrefix, waitFor } from '@chat/testkit';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { readyz, startGateway, type GatewayProcess } from './helpers/gateways.js';

/*
 * The chat page in a room of 5,000 users (far above the list limit): it shows
 * the count, the first page of the member list, and reads the next page as the
 * list is scrolled. The other 4,999 users are joined by tests/helpers/fill-room.mjs
 * in a process of its own.
 */
const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const FILL = fileURLToPath(new URL('./helpers/fill-room.mjs', import.meta.url));
const artifacts = fileURLToPath(new URL('../artifacts/', import.meta.url));
const ROOM = 'stadium';
const OTHERS = 4999;
const PAGE = 100; // the page's page size, and the gateway's default list limit
if (!existsSync(CHROMIUM) && process.env.CI) throw new Error('chromium is required in CI: apt-get install chromium (.ci/run does)');

/** Starts the filler and resolves once it says every user joined (rejects with what it said otherwise). */
async function fillRoom(wsUrl: string): Promise<Child> {
  const filler = startChild(process.execPath, [FILL, wsUrl, ROOM, String(OTHERS)], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  filler.process.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const report = new Promise<Record<string, unknown>>((resolve, reject) => {
    createInterface({ input: filler.process.stdout! }).once('line', (line) => resolve(JSON.parse(line) as Record<string, unknown>));
    // 'close', not 'exit': its last line of output is read by then.
    filler.process.once('close', (code) => reject(new Error(`fill-room exited early (${code}): ${stderr}`)));
  });
  try {
    const said = await report;
    if (said.joined !== OTHERS) throw new Error(`fill-room: ${JSON.stringify(said)}`);
    return filler;
  } catch (err) {
    await filler.kill();
    throw err;
  }
}

describe.skipIf(!existsSync(CHROMIUM))(`the chat page in a room of ${OTHERS + 1} users`, () => {
  let gateway: GatewayProcess | undefined;
  let filler: Child | undefined;
  let browser: Browser | undefined;

  beforeAll(async () => {
    gateway = await startGateway({
      REDIS_URL: inject('redisUrl'), REDIS_PREFIX: uniquePrefix('bigpage'), NODE_ID: 'gw-big',
      MAX_CONNECTIONS_PER_IP: '0', DRAIN_SPREAD_MS: '0',
    });
    await waitFor(async () => (await readyz(gateway!)) === 200, { what: 'ready' });
    [filler, browser] = await Promise.all([
      fillRoom(gateway.wsUrl),
      chromium.launch({ executablePath: CHROMIUM, args: ARGS }),
    ]);
    mkdirSync(artifacts, { recursive: true });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await filler?.stop();
    await gateway?.stop();
  });

  const names = (page: Page) => page.locator('#members li.dot');
  /** Scrolls the member list to its end with the mouse wheel, as a user would. */
  async function scrollMembersToEnd(page: Page): Promise<void> {
    const box = (await page.locator('#members').boundingBox())!;
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    const height = await page.$eval('#members', (el) => el.scrollHeight);
    await page.mouse.wheel(0, height);
  }

  it('shows the count, the first page of members, and reads the next page as the list is scrolled', async () => {
    const page = await browser!.newPage({ viewport: { width: 1000, height: 640 }, locale: 'en-US' });
    await page.goto(`${gateway!.httpUrl}/`);
    await page.fill('#name', 'alice');
    await page.fill('#first-room', ROOM);
    await page.click('#login button');
    await page.waitForSelector('#state[data-state="connected"]');
    await page.waitForSelector('#online:text-is("5,000 online")');

    // The first page: alice (first by id), then u0001.. in id order; no more until scrolled.
    await page.waitForSelector('#members li.more:has-text("100 of 5,000")');
    expect(await names(page).count()).toBe(PAGE);
    expect(await names(page).first().textContent()).toBe('alice (you)');
    expect(await names(page).nth(PAGE - 1).textContent()).toBe('u0099');
    await page.screenshot({ path: `${artifacts}big-room-first-page.png` });

    // Scrolled to its end, the list reads the next page, and again.
    for (const shown of [2 * PAGE, 3 * PAGE]) {
      await scrollMembersToEnd(page);
      await waitFor(async () => (await names(page).count()) === shown, { what: `${shown} names listed` });
      await page.waitForSelector(`#members li.more:has-text("${shown} of 5,000")`);
    }
    const listed = await names(page).allTextContents();
    expect(listed.slice(1)).toEqual(Array.from({ length: 3 * PAGE - 1 }, (_, i) => `u${String(i + 1).padStart(4, '0')}`));
    expect(await page.textContent('#online')).toBe('5,000 online');
    await page.screenshot({ path: `${artifacts}big-room-scrolled.png` });

    // The phone layout: people behind the menu, the list still scrolls on its own.
    await page.setViewportSize({ width: 390, height: 740 });
    await page.click('#menu');
    await page.waitForSelector('#members li.dot >> nth=0', { state: 'visible' });
    await scrollMembersToEnd(page);
    await waitFor(async () => (await names(page).count()) === 4 * PAGE, { what: `${4 * PAGE} names listed on a phone` });
    await page.waitForSelector(`#members li.more:has-text("${4 * PAGE} of 5,000")`);
    await page.screenshot({ path: `${artifacts}big-room-phone.png` });

    // Scrolled on to the end: every user once, in id order, and the list says it is all there.
    await waitFor(async () => {
      await scrollMembersToEnd(page);
      return (await page.textContent('#members li.more')) === '5,000 listed';
    }, { what: 'every member listed', timeoutMs: 30_000, intervalMs: 50 });
    const everyone = await names(page).allTextContents();
    expect(everyone).toHaveLength(OTHERS + 1);
    expect(new Set(everyone).size).toBe(OTHERS + 1);
    expect(everyone.at(-1)).toBe(`u${OTHERS}`);
    await page.screenshot({ path: `${artifacts}big-room-all-listed.png` });
  }, 60_000);
});
