import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServedService } from '../support/browser.js';
import { launchChromium, openPage, screenshot, serveService } from '../support/browser.js';
import { testDbKind } from '../support/db.js';

// The reference page at /docs, offline: everything it loads comes from the service, within its CSP.
describe.skipIf(testDbKind === 'postgres')('the API reference at /docs, in a real browser', () => {
  let browser: Browser;
  let served: ServedService;
  let page: Page;
  let consoleErrors: string[];
  const elsewhere: string[] = [];

  beforeAll(async () => {
    browser = await launchChromium();
    served = await serveService();
    ({ page, consoleErrors } = await openPage(browser));
    page.on('request', (request) => {
      if (!request.url().startsWith(served.url) && !request.url().startsWith('data:'))
        elsewhere.push(request.url());
    });
  });
  afterAll(async () => {
    await browser?.close();
    await served?.close();
  });

  it('shows every route of /openapi.json, loading nothing from elsewhere, with no CSP violation', async () => {
    await page.goto(`${served.url}/docs`);
    await page.locator('.opblock').first().waitFor({ timeout: 20_000 });
    const paths = await page.locator('.opblock-summary-path').allTextContents();
    expect(paths.map((p) => p.replace(/\u200b/g, ''))).toEqual(
      expect.arrayContaining(['/subscribe', '/api/essays']),
    );
    expect(elsewhere).toEqual([]);
    expect(consoleErrors).toEqual([]);
    await screenshot(page, 'docs');
  });
});
