import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServedService } from '../support/browser.js';
import { launchChromium, openPage, serveService, serveSite } from '../support/browser.js';
import { testDbKind } from '../support/db.js';
import { subscribersFor } from '../support/reader.js';

const KEY = 'altcha-browser-key-0123456789abcdef012345';

/** Issue 26: with ALTCHA on, the widget served by the service solves its challenge in Chromium, and subscribes. */
describe.skipIf(testDbKind === 'postgres')('the ALTCHA widget, in a real browser', () => {
  let browser: Browser;
  let site: { origin: string; close(): Promise<void> };
  let served: ServedService;
  let snippet = '';

  beforeAll(async () => {
    browser = await launchChromium();
    site = await serveSite(
      () => `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>An essay · Site</title></head>
<body><main><h1>On walking</h1>
${snippet}
</main></body></html>`,
    );
    served = await serveService({ ALTCHA_HMAC_KEY: KEY, ALLOWED_ORIGINS: site.origin });
    const { context, page } = await openPage(browser);
    await page.goto(`${served.url}/form`);
    snippet = (await page.locator('pre code').textContent()) ?? '';
    await context.close();
  });

  afterAll(async () => {
    await browser?.close();
    await site?.close();
    await served?.close();
  });

  /** Types the address (the widget starts on focus) and waits until the widget holds a solution. */
  async function fillAndSolve(page: Page, email: string): Promise<number> {
    const started = Date.now();
    await page.getByLabel('Email address').fill(email);
    const solution = page.locator('input[name="altcha"]');
    await expect
      .poll(async () => (await solution.count()) && solution.inputValue(), { timeout: 20_000 })
      .toBeTruthy();
    return Date.now() - started;
  }

  it('on the service’s own /form page, under its CSP: solved, then the plain form post subscribes', async () => {
    const { context, page, consoleErrors } = await openPage(browser);
    const answer = await page.goto(`${served.url}/form`);
    const csp = answer?.headers()['content-security-policy'] ?? '';
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("worker-src 'self'");
    expect(csp).not.toMatch(/unsafe-inline|unsafe-eval|blob:|data:/);

    const ms = await fillAndSolve(page, 'widget@example.org');
    await page.getByRole('button', { name: 'Subscribe' }).first().click();
    await page.waitForURL(`${served.url}/check-inbox`);
    expect(await subscribersFor(served.service.database.db, 'widget@example.org')).toHaveLength(1);
    expect(consoleErrors).toEqual([]);
    // Well under a second here (the widget waits at least 500 ms by default before it says done).
    expect(ms).toBeLessThan(5_000);
    await context.close();
  });

  it('a Subscribe clicked before the widget has its proof waits for it, then subscribes', async () => {
    const { context, page, consoleErrors } = await openPage(browser);
    await page.goto(`${served.url}/form`);
    await page.getByLabel('Email address').fill('in-a-hurry@example.org');
    await page.getByRole('button', { name: 'Subscribe' }).first().click();
    await page.waitForURL(`${served.url}/check-inbox`);
    expect(await subscribersFor(served.service.database.db, 'in-a-hurry@example.org')).toHaveLength(1);
    expect(consoleErrors).toEqual([]);
    await context.close();
  });

  it('in the snippet on the site’s page: solved with a worker from a copy of the service’s file, subscribed without leaving', async () => {
    expect(snippet).toContain('<altcha-widget');
    const { context, page, consoleErrors } = await openPage(browser);
    await page.goto(`${site.origin}/`);
    await fillAndSolve(page, 'site-widget@example.org');
    await page.getByRole('button', { name: 'Subscribe' }).click();
    await expect
      .poll(() => page.locator('.oneletter-status').textContent())
      .toBe('Almost done: check your inbox and open the link we sent to confirm.');
    expect(await subscribersFor(served.service.database.db, 'site-widget@example.org')).toHaveLength(1);
    expect(consoleErrors).toEqual([]);
    await context.close();
  });
});
