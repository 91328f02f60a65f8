import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import AxeBuilder from '@axe-core/playwright';
import { sql } from 'drizzle-orm';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rows } from '../../src/db/client.js';
import type { ServedService } from '../support/browser.js';
import {
  checkPage,
  launchChromium,
  openPage,
  SCREENSHOTS_DIR,
  screenshot,
  serveService,
} from '../support/browser.js';
import { testDbKind } from '../support/db.js';
import { addresses, seedSubscribers } from '../support/sendout.js';
import { PUBLISHER_TOKEN } from '../support/service.js';

const READERS = 12;
/** Pending subscribers besides the readers: more than a page of the list (50) in all. */
const WAITING = 60;

/** The widths the dashboard is looked at: the smallest phone, a common phone, a desktop. */
const WIDTHS = [320, 390, 1280] as const;

/**
 * What every dashboard page this file touches must pass: axe in light and dark (without `exclude`, e.g. the
 * sandboxed letter frame), no sideways scrolling at any width, and screenshots at each width in both schemes
 * (tests/e2e/screenshots/<name>-<width>-<scheme>.png).
 */
async function checkDashboardPage(page: Page, name: string, exclude?: string): Promise<void> {
  mkdirSync(SCREENSHOTS_DIR, { recursive: true });
  const original = page.viewportSize();
  for (const scheme of ['light', 'dark'] as const) {
    await page.emulateMedia({ colorScheme: scheme });
    const axe = new AxeBuilder({ page });
    if (exclude) axe.exclude(exclude);
    const bad = (await axe.analyze()).violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
    expect(bad, `accessibility violations on ${name} (${scheme})`).toEqual([]);
    for (const width of WIDTHS) {
      await page.setViewportSize({ width, height: width < 800 ? 700 : 800 });
      const overflow = await page.evaluate<number>('document.documentElement.scrollWidth - innerWidth');
      expect(overflow, `${name} scrolls sideways at ${width} px`).toBeLessThanOrEqual(0);
      await page.screenshot({
        path: join(SCREENSHOTS_DIR, `${name}-${width}-${scheme}.png`),
        fullPage: true,
      });
    }
  }
  await page.emulateMedia({ colorScheme: 'light' });
  if (original) await page.setViewportSize(original);
}

/** The labels of a chart's value axis never overlap, as drawn at the page's current width. */
async function expectChartLabelsApart(page: Page): Promise<void> {
  const overlaps = await page.evaluate<string[]>(`(() => {
    const found = [];
    for (const svg of document.querySelectorAll('svg.chart')) {
      const boxes = [...svg.querySelectorAll('text')].map((t) => ({ text: t.textContent, r: t.getBoundingClientRect() }));
      const chart = svg.getBoundingClientRect();
      for (const a of boxes) {
        if (a.r.left < chart.left - 0.5 || a.r.right > chart.right + 0.5) found.push(a.text + ' clipped');
        for (const b of boxes) {
          if (a === b) continue;
          const apart = a.r.right <= b.r.left || b.r.right <= a.r.left || a.r.bottom <= b.r.top || b.r.bottom <= a.r.top;
          if (!apart) found.push(a.text + ' overlaps ' + b.text);
        }
      }
    }
    return found;
  })()`);
  expect(overlaps).toEqual([]);
}

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
  let consoleWarnings: string[];

  beforeAll(async () => {
    browser = await launchChromium();
    served = await serveService({
      SITE_NAME: 'Walking Essays',
      DISPATCH_POLL_MS: '100',
      DISPATCH_BATCH_SIZE: '2',
    });
    await seedSubscribers(served.service.database.db, 'confirmed', addresses('reader', READERS));
    await seedSubscribers(served.service.database.db, 'pending', addresses('waiting', WAITING));
    ({ page, consoleErrors, consoleWarnings } = await openPage(browser));
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
    await checkDashboardPage(page, 'admin-preview', 'iframe.letter');
    expect(served.service.smtp.received).toEqual([]);
    // The page and its sandboxed frame agree on their agent cluster (Origin-Agent-Cluster): nothing to warn.
    expect(consoleWarnings).toEqual([]);
  });

  it('sends a test of the letter to one address, and the send-out knows nothing of it', async () => {
    const s = served.service;
    await page.getByLabel('Send a test to').fill('editor@example.net');
    await page.getByRole('button', { name: 'Send a test' }).click();
    await page.locator('#test-result').waitFor();
    expect(await page.locator('#test-result').textContent()).toContain('Sent a test to editor@example.net');
    const [test] = s.smtp.to('editor@example.net');
    expect(test?.parsed.subject).toBe('[Test] On walking');
    const [ledger] = await rows<{ essays: number; deliveries: number }>(
      s.database.db,
      sql`select (select count(*) from essays)::int as essays, (select count(*) from deliveries)::int as deliveries`,
    );
    expect({ essays: Number(ledger?.essays), deliveries: Number(ledger?.deliveries) }).toEqual({
      essays: 0,
      deliveries: 0,
    });
    await checkDashboardPage(page, 'admin-preview-tested', 'iframe.letter');
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
    expect(s.smtp.received.filter((m) => m.parsed.subject === 'On walking').length).toBe(READERS);
    await checkPage(page, 'admin-sendout');
    await checkDashboardPage(page, 'admin-sendout');
    await page.getByRole('navigation').getByRole('link', { name: 'Overview' }).click();
    await page.getByRole('heading', { name: 'Latest send-outs' }).waitFor();
    await checkPage(page, 'admin-overview');
    await checkDashboardPage(page, 'admin-overview');
    for (const width of WIDTHS) {
      await page.setViewportSize({ width, height: 700 });
      await expectChartLabelsApart(page);
    }
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  it('pages through more than 50 subscribers and filters them by status', async () => {
    await page.getByRole('navigation').getByRole('link', { name: 'Subscribers' }).click();
    await page.getByRole('heading', { name: 'Subscribers', level: 1 }).waitFor();
    const listed = () => page.locator('table.stack tbody tr').count();
    expect(await listed()).toBe(50);
    expect(await page.locator('#shown').textContent()).toContain('1–50.');
    await checkDashboardPage(page, 'admin-subscribers-page-1');
    await page.getByRole('link', { name: 'Next page' }).click();
    await page.locator('#shown', { hasText: '51–72.' }).waitFor();
    expect(await listed()).toBe(READERS + WAITING - 50);
    expect(await page.getByRole('link', { name: 'Next page' }).count()).toBe(0);
    await checkDashboardPage(page, 'admin-subscribers-page-2');
    await page.getByRole('link', { name: 'First page' }).click();
    await page.getByLabel('Status').selectOption('confirmed');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.locator('#shown', { hasText: 'confirmed' }).waitFor();
    expect(await listed()).toBe(READERS);
  });

  it('finds a subscriber and shows their history', async () => {
    await page.getByRole('navigation').getByRole('link', { name: 'Subscribers' }).click();
    await page.getByLabel('Address contains').fill('reader-0007');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.getByRole('link', { name: 'reader-0007@example.org' }).waitFor();
    expect(await page.getByRole('link', { name: /@example\.org$/ }).count()).toBe(1);
    await checkPage(page, 'admin-subscribers');
    await checkDashboardPage(page, 'admin-subscribers-search');
    await page.getByRole('link', { name: 'reader-0007@example.org' }).click();
    await page.getByRole('heading', { name: 'reader-0007@example.org', level: 1 }).waitFor();
    expect(await page.getByRole('row', { name: /On walking sent/ }).count()).toBe(1);
    await checkPage(page, 'admin-subscriber');
    await checkDashboardPage(page, 'admin-subscriber');
  });

  it('erases a subscriber after a confirmation page', async () => {
    await page.getByRole('button', { name: 'Erase this subscriber…' }).click();
    await page.getByRole('heading', { name: 'Erase reader-0007@example.org?', level: 1 }).waitFor();
    await checkDashboardPage(page, 'admin-erase');
    await page.getByRole('button', { name: 'Erase reader-0007@example.org' }).click();
    await page.getByText('Erased:').waitFor();
    const [left] = await rows<{ n: number }>(
      served.service.database.db,
      sql`select count(*)::int as n from subscribers where email = 'reader-0007@example.org'`,
    );
    expect(Number(left?.n)).toBe(0);
  });

  it('imports a CSV file, shows the report, and exports the list', async () => {
    await page.getByRole('link', { name: 'Import a CSV file' }).click();
    await page.getByRole('heading', { name: 'Import subscribers', level: 1 }).waitFor();
    await checkDashboardPage(page, 'admin-import');
    await page.getByLabel('CSV file').setInputFiles({
      name: 'list.csv',
      mimeType: 'text/csv',
      buffer: Buffer.from(
        'email,name,status\r\nimported-1@example.org,Ada,confirmed\r\nnot an address,,\r\n',
      ),
    });
    await page.getByRole('button', { name: 'Import' }).click();
    await page.getByRole('heading', { name: 'What the import did' }).waitFor();
    await checkDashboardPage(page, 'admin-import-report');
    await page.getByRole('link', { name: 'See the list' }).click();
    const download = page.waitForEvent('download');
    await page.getByRole('link', { name: 'Export all subscribers as CSV' }).click();
    const file = await download;
    expect(file.suggestedFilename()).toMatch(/^subscribers-\d{4}-\d{2}-\d{2}\.csv$/);
  });

  it("a page not found is in the dashboard's layout, with its navigation", async () => {
    expect((await page.goto(`${served.url}/admin/no-such-page`))?.status()).toBe(404);
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Page not found');
    await page.getByRole('navigation').getByRole('link', { name: 'Overview' }).waitFor();
    await checkDashboardPage(page, 'admin-404');
    expect(consoleErrors.splice(0)).toEqual(['404 /admin/no-such-page']);
    await page.getByRole('link', { name: 'Back to the overview' }).click();
    await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();
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
      '/admin/publish/test',
      '/admin/publish',
      expect.stringMatching(/^\/admin\/subscribers\/\d+\/erase$/),
      '/admin/subscribers/import',
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
