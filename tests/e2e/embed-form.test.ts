import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServedService } from '../support/browser.js';
import {
  checkPage,
  expectAccessible,
  launchChromium,
  openPage,
  serveService,
  serveSite,
} from '../support/browser.js';
import { testDbKind } from '../support/db.js';
import { subscribersFor } from '../support/reader.js';

const success = 'Almost done: check your inbox and open the link we sent to confirm.';

// The browser tests check pages, forms and CORS, not the database: the PGlite run is enough.
describe.skipIf(testDbKind === 'postgres')('the form a site pastes, in a real browser', () => {
  let browser: Browser;
  let site: { origin: string; close(): Promise<void> };
  let served: ServedService;
  let snippet = '';

  beforeAll(async () => {
    browser = await launchChromium();
    site = await serveSite(
      () => `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>An essay · Site</title></head>
<body><main><h1>On walking</h1><p>Slowly, and far.</p>
<h2>Get the next essay by email</h2>
${snippet}
</main></body></html>`,
    );
    served = await serveService({
      ALLOWED_ORIGINS: site.origin,
      SITE_NAME: 'Walking Essays',
      SITE_URL: site.origin,
      SUBSCRIBE_LIMIT_PER_ADDRESS: '2',
    });
    // The site owner copies the snippet from GET /form and pastes it into the page.
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

  /** Opens the site's page and subscribes through the pasted form. */
  async function subscribeOnSite(page: Page, email: string, origin = site.origin) {
    await page.goto(`${origin}/`);
    await page.getByLabel('Email address').fill(email);
    await page.getByRole('button', { name: 'Subscribe' }).click();
  }

  it('GET /form shows the form and a snippet to copy, which is what the site pastes', async () => {
    const { context, page, consoleErrors } = await openPage(browser);
    const res = await page.goto(`${served.url}/form`);
    expect(res?.status()).toBe(200);
    expect(snippet).toContain(`<form data-oneletter method="post" action="${served.url}/subscribe">`);
    expect(snippet).toContain(`<script src="${served.url}/form.js" defer></script>`);
    expect(snippet).toMatch(/<div hidden>.*name="website"/);
    await checkPage(page, 'form');
    expect(consoleErrors).toEqual([]);
    await context.close();
  });

  it('with JavaScript, the answer shows inline next to the form and the page stays', async () => {
    const { context, page, consoleErrors } = await openPage(browser);
    await page.goto(`${site.origin}/`);
    const before = served.requests.length;
    await page.evaluate('window.stillHere = true');
    await page.getByLabel('Email address').fill('walker@example.com');
    await page.getByRole('button', { name: 'Subscribe' }).click();

    await expect.poll(() => page.getByRole('status').textContent()).toBe(success);
    expect(page.url()).toBe(`${site.origin}/`);
    // A navigation would have made a new window without the mark.
    expect(await page.evaluate('window.stillHere')).toBe(true);
    expect(await page.getByLabel('Email address').inputValue()).toBe('');
    const [subscriber] = await subscribersFor(served.service.database.db, 'walker@example.com');
    expect(subscriber?.status).toBe('pending');
    // The browser asked first (a JSON body is not a "simple" request), from the site's origin.
    const fromSite = served.requests.slice(before).filter((r) => r.path === '/subscribe');
    expect(fromSite.map((r) => [r.method, r.origin, r.contentType])).toEqual([
      ['OPTIONS', site.origin, null],
      ['POST', site.origin, 'application/json'],
    ]);
    await checkPage(page, 'site-subscribed-inline');
    expect(consoleErrors).toEqual([]);
    await context.close();
  });

  it('with JavaScript, an address the service refuses gets its message inline', async () => {
    const { context, page } = await openPage(browser);
    // The browser's own check lets this through (no dot is needed there); the service wants a real domain.
    await subscribeOnSite(page, 'walker@localhost');
    await expect.poll(() => page.getByRole('status').textContent()).toMatch(/does not look like an email/);
    expect(await page.getByRole('status').getAttribute('data-state')).toBe('invalid_email');
    expect(await page.getByLabel('Email address').getAttribute('aria-invalid')).toBe('true');
    expect(page.url()).toBe(`${site.origin}/`);
    await checkPage(page, 'site-invalid-email-inline');
    await context.close();
  });

  it('with JavaScript, too many attempts for one address say so inline', async () => {
    const { context, page } = await openPage(browser);
    for (let attempt = 1; attempt <= 3; attempt++) {
      await subscribeOnSite(page, 'eager@example.com');
      await expect.poll(() => page.getByRole('status').textContent()).not.toBe('');
    }
    expect(await page.getByRole('status').textContent()).toMatch(/Too many subscription attempts/);
    expect(await page.getByRole('status').getAttribute('data-state')).toBe('rate_limited');
    await checkPage(page, 'site-rate-limited-inline');
    await context.close();
  });

  it('without JavaScript, the same form posts and lands on the check-inbox page', async () => {
    const { context, page, consoleErrors } = await openPage(browser, { javaScriptEnabled: false });
    await subscribeOnSite(page, 'plain@example.com');
    await page.waitForURL(`${served.url}/check-inbox`);
    await expect.poll(() => page.getByRole('heading', { level: 1 }).textContent()).toBe('Check your inbox');
    expect(await page.getByRole('link', { name: 'Back to Walking Essays' }).getAttribute('href')).toBe(
      site.origin,
    );
    const [subscriber] = await subscribersFor(served.service.database.db, 'plain@example.com');
    expect(subscriber?.status).toBe('pending');
    expect(consoleErrors).toEqual([]);
    await context.close();

    // axe runs as a script in the page, so the page is looked at again with JavaScript on.
    const withScripts = await openPage(browser);
    await withScripts.page.goto(`${served.url}/check-inbox`);
    await checkPage(withScripts.page, 'check-inbox');
    await withScripts.context.close();
  });

  it('from an origin not in ALLOWED_ORIGINS, the script steps aside and the form posts as plain HTML', async () => {
    const { context, page } = await openPage(browser);
    const otherOrigin = site.origin.replace('127.0.0.1', 'localhost');
    const before = served.requests.length;
    await subscribeOnSite(page, 'elsewhere@example.com', otherOrigin);
    await page.waitForURL(`${served.url}/check-inbox`);
    // The preflight was refused, so the script's request never went out: one subscription attempt, not two.
    const sent = served.requests.slice(before).filter((r) => r.path === '/subscribe');
    expect(sent.map((r) => [r.method, r.contentType])).toEqual([
      ['OPTIONS', null],
      ['POST', 'application/x-www-form-urlencoded'],
    ]);
    const [subscriber] = await subscribersFor(served.service.database.db, 'elsewhere@example.com');
    expect(subscriber?.status).toBe('pending');
    await context.close();
  });

  it('the script is served cacheable and as JavaScript, for any page to load', async () => {
    const res = await fetch(`${served.url}/form.js`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(res.headers.get('cache-control')).toBe('public, max-age=3600');
    expect(res.headers.get('cross-origin-resource-policy')).toBe('cross-origin');
    // Small: a site loads it on every page (with ALTCHA on, it also holds a submit until the proof is there).
    expect((await res.text()).split('\n').length).toBeLessThan(110);
  });

  it('the pasted form is accessible, and the keyboard goes from the address to the button, past the honeypot', async () => {
    const { context, page } = await openPage(browser);
    await page.goto(`${site.origin}/`);
    await expectAccessible(page);
    const focused = () =>
      page.evaluate<string>(
        'document.activeElement?.getAttribute("name") ?? document.activeElement?.textContent',
      );
    await page.keyboard.press('Tab');
    expect(await focused()).toBe('email');
    await page.keyboard.press('Tab');
    expect(await focused()).toBe('Subscribe');
    expect(await page.getByRole('textbox').count()).toBe(1);
    await context.close();
  });
});
