import AxeBuilder from '@axe-core/playwright';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServedService } from '../support/browser.js';
import { checkPage, launchChromium, openPage, screenshot, serveService } from '../support/browser.js';
import { testDbKind } from '../support/db.js';
import { addresses, seedSubscribers } from '../support/sendout.js';
import { PUBLISHER_TOKEN } from '../support/service.js';

const READERS = 12;

/**
 * checkPage() for the preview: the letter's frame is sandboxed (no scripts), so axe can't run inside it and
 * is told to leave it out. The letter is the email template's own page; the dashboard around it is checked.
 */
async function checkPreviewPage(page: Page): Promise<void> {
  for (const scheme of ['light', 'dark'] as const) {
    await page.emulateMedia({ colorScheme: scheme });
    const results = await new AxeBuilder({ page }).exclude('iframe.letter').analyze();
    const bad = results.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.id} (${v.impact}): ${v.help}`);
    expect(bad, `accessibility violations on the preview (${scheme})`).toEqual([]);
  }
  await page.emulateMedia({ colorScheme: 'light' });
  await page.setViewportSize({ width: 320, height: 640 });
  const overflow = await page.evaluate<number>('document.documentElement.scrollWidth - innerWidth');
  expect(overflow, 'the preview scrolls sideways at 320 px').toBeLessThanOrEqual(0);
  await screenshot(page, 'admin-preview');
}

// The browser tests check pages, not the database: the PGlite run is enough.
describe.skipIf(testDbKind === 'postgres')('the publisher dashboard, in a real browser', () => {
  let browser: Browser;
  let served: ServedService;
  let page: Page;
  let consoleErrors: string[];

  beforeAll(async () => {
    browser = await launchChromium();
    served = await serveService({
      SITE_NAME: 'Walking Essays',
      DISPATCH_POLL_MS: '100',
      DISPATCH_BATCH_SIZE: '2',
    });
    await seedSubscribers(served.service.database.db, 'confirmed', addresses('reader', READERS));
    ({ page, consoleErrors } = await openPage(browser));
  });

  afterAll(async () => {
    await browser?.close();
    await served?.close();
  });

  it('signs in with the publisher token', async () => {
    await page.goto(`${served.url}/admin`);
    expect(new URL(page.url()).pathname).toBe('/admin/sign-in');
    await checkPage(page, 'admin-sign-in');
    await page.getByLabel('Publisher token').fill(PUBLISHER_TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();
    expect(await page.locator('dl.figures dd').first().textContent()).toBe(String(READERS));
    await checkPage(page, 'admin-overview-empty');
  });

  it('previews an essay, then publishes it after the confirmation', async () => {
    await page.getByRole('navigation').getByRole('link', { name: 'Publish' }).click();
    await page.getByLabel('Slug').fill('on-walking');
    await page.getByLabel('Title').fill('On walking');
    await page.getByLabel('Address of the essay').fill('https://essays.example.test/walking');
    await page.getByLabel('Summary').fill('Why a slow walk clears the head.');
    await checkPage(page, 'admin-publish');
    await page.getByRole('button', { name: 'Preview the letter' }).click();
    await page.getByRole('heading', { name: 'Preview and send', level: 1 }).waitFor();
    const frame = page.frameLocator('iframe.letter');
    await frame.getByRole('link', { name: 'Read the essay' }).waitFor();
    expect(await frame.getByRole('heading', { level: 1 }).textContent()).toBe('On walking');
    expect(await page.locator('pre').textContent()).toContain(
      'Read it here: https://essays.example.test/walking',
    );
    await checkPreviewPage(page);
    expect(served.service.smtp.received).toEqual([]);
  });

  it('follows the send-out to its end without reloading, every figure agreeing with the others at each moment', async () => {
    const s = served.service;
    s.smtp.delayMs = 150;
    s.dispatcher.start();
    await page.getByRole('button', { name: `Send to ${READERS} confirmed subscribers` }).click();
    await page.getByRole('heading', { name: 'On walking', level: 1 }).waitFor();
    await page.evaluate('window.stayedOnPage = true');
    /** What the page shows now: the bar, its line, the tiles and the table's last row, read at once. */
    const shown = () =>
      page.evaluate<{
        bar: string;
        done: number;
        sentLine: number;
        status: string;
        tiles: Record<string, number>;
        tableLast: { sent?: number; pending?: number };
      }>(`(() => {
        const text = (sel) => document.querySelector(sel)?.textContent?.trim() ?? '';
        const bar = document.querySelector('progress');
        const tiles = Object.fromEntries(
          [...document.querySelectorAll('dl.figures > div')].map((d) => [
            d.querySelector('dt')?.textContent ?? '',
            Number(d.querySelector('dd')?.textContent),
          ]),
        );
        const lastRow = [...document.querySelectorAll('details tbody tr')].at(-1);
        const cells = [...(lastRow?.querySelectorAll('td') ?? [])].map((td) => Number(td.textContent));
        return {
          bar: \`\${bar.value}/\${bar.max}\`,
          done: Number(text('[data-field="done"]')),
          sentLine: Number(text('[data-field="sent"]')),
          status: text('[data-field="status"]'),
          tiles,
          tableLast: { sent: cells[0], pending: cells[4] },
        };
      })()`);
    const seen = new Set<string>();
    const started = Date.now();
    let now = await shown();
    while (Date.now() - started < 30_000) {
      now = await shown();
      seen.add(now.bar);
      const t = now.tiles;
      // One moment on the whole page: the bar, its line, the tiles and the table say the same.
      expect(now.sentLine, JSON.stringify(now)).toBe(t.Sent);
      expect(now.done, JSON.stringify(now)).toBe(READERS - (t.Pending ?? 0));
      expect(now.bar, JSON.stringify(now)).toBe(`${now.done}/${READERS}`);
      expect(now.tableLast, JSON.stringify(now)).toEqual({ sent: t.Sent, pending: t.Pending });
      if (now.status === 'done') break;
      await page.waitForTimeout(100);
    }
    expect(now.status).toBe('done');
    expect(now.tiles).toMatchObject({ Sent: READERS, Pending: 0, Failed: 0, Unknown: 0 });
    expect(now.bar).toBe(`${READERS}/${READERS}`);
    // It moved while we watched: more than one value, and the page was never reloaded.
    expect(seen.size).toBeGreaterThan(1);
    expect(await page.evaluate('window.stayedOnPage')).toBe(true);
    expect(await page.locator('[data-field="percent"]').first().textContent()).toBe('100');
    expect(s.smtp.received.length).toBe(READERS);
    await checkPage(page, 'admin-sendout');
    await page.getByRole('navigation').getByRole('link', { name: 'Overview' }).click();
    await page.getByRole('heading', { name: 'Latest send-outs' }).waitFor();
    await checkPage(page, 'admin-overview');
  });

  it('finds a subscriber and shows their history', async () => {
    await page.getByRole('navigation').getByRole('link', { name: 'Subscribers' }).click();
    await page.getByLabel('Address contains').fill('reader-0007');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.getByRole('link', { name: 'reader-0007@example.org' }).waitFor();
    expect(await page.getByRole('link', { name: /@example\.org$/ }).count()).toBe(1);
    await checkPage(page, 'admin-subscribers');
    await page.getByRole('link', { name: 'reader-0007@example.org' }).click();
    await page.getByRole('heading', { name: 'reader-0007@example.org', level: 1 }).waitFor();
    expect(await page.getByRole('row', { name: /On walking sent/ }).count()).toBe(1);
    await checkPage(page, 'admin-subscriber');
  });

  it('signs out, and the dashboard asks for the token again', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('heading', { name: 'Sign in to the dashboard' }).waitFor();
    await page.goto(`${served.url}/admin/subscribers`);
    expect(new URL(page.url()).pathname).toBe('/admin/sign-in');
    expect(consoleErrors).toEqual([]);
    // Every form post said where it came from (the dashboard refuses other origins).
    const posts = served.requests.filter((r) => r.method === 'POST' && r.path.startsWith('/admin'));
    expect(posts.map((r) => r.path)).toEqual([
      '/admin/sign-in',
      '/admin/publish/preview',
      '/admin/publish',
      '/admin/sign-out',
    ]);
    expect(new Set(posts.map((r) => r.origin))).toEqual(new Set([served.url]));
  });

  it('signs in at another address than PUBLIC_URL (localhost for 127.0.0.1), styled, and signs out there', async () => {
    const at = served.url.replace('127.0.0.1', 'localhost');
    const elsewhere = await openPage(browser);
    try {
      await elsewhere.page.goto(`${at}/admin`);
      expect(new URL(elsewhere.page.url()).pathname).toBe('/admin/sign-in');
      await elsewhere.page.getByLabel('Publisher token').fill(PUBLISHER_TOKEN);
      await elsewhere.page.getByRole('button', { name: 'Sign in' }).click();
      await elsewhere.page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();
      expect(new URL(elsewhere.page.url()).origin).toBe(at);
      // The stylesheet came from where the page did: a dashboard opened at the server's IP is styled too.
      const styled = await elsewhere.page.evaluate<boolean>(
        '[...document.styleSheets].some((s) => s.href?.startsWith(location.origin + "/assets/"))',
      );
      expect(styled).toBe(true);
      await elsewhere.page.getByRole('button', { name: 'Sign out' }).click();
      await elsewhere.page.getByRole('heading', { name: 'Sign in to the dashboard' }).waitFor();
      expect(elsewhere.consoleErrors).toEqual([]);
      const posts = served.requests.filter((r) => r.method === 'POST' && r.origin === at);
      expect(posts.map((r) => r.path)).toEqual(['/admin/sign-in', '/admin/sign-out']);
    } finally {
      await elsewhere.context.close();
    }
  });
});
