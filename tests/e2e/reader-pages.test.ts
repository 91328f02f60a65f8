import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServedService } from '../support/browser.js';
import { checkPage, launchChromium, openPage, serveService } from '../support/browser.js';
import { testDbKind } from '../support/db.js';
import { subscribersFor } from '../support/reader.js';

const SITE_URL = 'https://essays.example.test';

/** The first link in an email's text part that starts with `prefix`. */
function linkIn(text: string | undefined, prefix: string): string {
  const link = text?.split(/\s+/).find((word) => word.startsWith(prefix));
  if (!link) throw new Error(`no ${prefix}… link in: ${text}`);
  return link.replace(/[>).,]+$/, '');
}

// The browser tests check pages, not the database: the PGlite run is enough.
describe.skipIf(testDbKind === 'postgres')('the pages behind the links in emails, in a real browser', () => {
  let browser: Browser;
  let served: ServedService;
  let confirmLink = '';

  beforeAll(async () => {
    browser = await launchChromium();
    served = await serveService({
      SITE_NAME: 'Walking Essays',
      SITE_URL,
      SUBSCRIBE_LIMIT_PER_ADDRESS: '2',
    });
  });

  afterAll(async () => {
    await browser?.close();
    await served?.close();
  });

  it('the confirmation link from the email opens a page whose button confirms the subscription', async () => {
    const s = served.service;
    expect((await s.subscribeJson('reader@example.com')).status).toBe(202);
    await s.drain();
    const [email] = s.smtp.to('reader@example.com');
    confirmLink = linkIn(email?.parsed.text, `${served.url}/confirm/`);

    const { context, page, consoleErrors } = await openPage(browser);
    await page.goto(confirmLink);
    expect(await page.title()).toBe('Confirm your subscription · Walking Essays');
    expect(await page.getByRole('link', { name: 'Walking Essays' }).getAttribute('href')).toBe(SITE_URL);
    await checkPage(page, 'confirm');
    expect((await subscribersFor(s.database.db, 'reader@example.com'))[0]?.status).toBe('pending');

    await page.getByRole('button', { name: 'Confirm my subscription' }).click();
    await page.getByRole('heading', { name: "You're subscribed" }).waitFor();
    expect((await subscribersFor(s.database.db, 'reader@example.com'))[0]?.status).toBe('confirmed');
    await checkPage(page, 'confirmed');
    // The browser fetched the page's icon, and nothing about it (a 404, a CSP refusal) reached the console.
    expect(served.requests.some((r) => r.method === 'GET' && r.path === '/favicon.svg')).toBe(true);
    expect(consoleErrors).toEqual([]);
    await context.close();
  });

  it('a subscription on /form and its confirmation keep the page each came from (consent on record)', async () => {
    const s = served.service;
    const { context, page } = await openPage(browser);
    await page.goto(`${served.url}/form`);
    await page.getByLabel('Email address').fill('consent@example.com');
    await page.getByRole('button', { name: 'Subscribe' }).click();
    await page.getByText('Check your inbox').first().waitFor();
    await s.drain();
    const [email] = s.smtp.to('consent@example.com');
    await page.goto(linkIn(email?.parsed.text, `${served.url}/confirm/`));
    await page.getByRole('button', { name: 'Confirm my subscription' }).click();
    await page.getByRole('heading', { name: "You're subscribed" }).waitFor();
    const [record] = (await s.detail('consent@example.com')).consent;
    // The form's page by its path; the confirmation by its origin alone (its link's path is a token).
    expect([record?.page, record?.confirmation?.page]).toEqual([`${served.url}/form`, served.url]);
    await context.close();
  });

  it("the unsubscribe link from an essay's email opens a page whose button unsubscribes", async () => {
    const s = served.service;
    const published = await s.publish({
      slug: 'on-walking',
      title: 'On walking',
      url: `${SITE_URL}/walking`,
    });
    expect(published.status).toBe(202);
    await s.drain();
    const essay = s.smtp.to('reader@example.com').find((m) => m.parsed.subject?.includes('On walking'));
    const unsubscribeLink = linkIn(essay?.parsed.text, `${served.url}/unsubscribe/`);

    const { context, page, consoleErrors } = await openPage(browser);
    await page.goto(unsubscribeLink);
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Unsubscribe');
    await checkPage(page, 'unsubscribe');
    expect((await subscribersFor(s.database.db, 'reader@example.com'))[0]?.status).toBe('confirmed');

    await page.getByRole('button', { name: 'Unsubscribe' }).click();
    await page.getByRole('heading', { name: "You're unsubscribed" }).waitFor();
    expect((await subscribersFor(s.database.db, 'reader@example.com'))[0]?.status).toBe('unsubscribed');
    // The resubscribe form is there, labelled.
    expect(await page.getByLabel('Email address').count()).toBe(1);
    await checkPage(page, 'unsubscribed');
    expect(consoleErrors).toEqual([]);
    await context.close();
  });

  it("the service's own address is a page like the others, that leads to the form", async () => {
    const { context, page, consoleErrors } = await openPage(browser);
    expect((await page.goto(`${served.url}/`))?.status()).toBe(200);
    await checkPage(page, 'home');
    await page.getByRole('link', { name: 'Subscribe' }).click();
    await page.waitForURL(`${served.url}/form`);
    expect(consoleErrors).toEqual([]);
    await context.close();
  });

  it('the error pages (404, an unknown link, a used link, 429) are pages like the others', async () => {
    const { context, page, consoleErrors } = await openPage(browser);

    expect((await page.goto(`${served.url}/no-such-page`))?.status()).toBe(404);
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Page not found');
    await checkPage(page, 'error-404');

    expect((await page.goto(`${served.url}/confirm/${'x'.repeat(43)}`))?.status()).toBe(404);
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('This link is not valid');
    expect(await page.getByLabel('Email address').count()).toBe(1);
    await checkPage(page, 'error-link-invalid');

    // The reader unsubscribed above: their old confirmation link must not bring the subscription back.
    expect((await page.goto(confirmLink))?.status()).toBe(410);
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('This link was already used');
    await checkPage(page, 'error-link-used');

    for (let attempt = 1; attempt <= 3; attempt++) {
      await page.goto(`${served.url}/form`);
      await page.getByLabel('Email address').fill('eager@example.com');
      await page.getByRole('button', { name: 'Subscribe' }).click();
      await page.waitForURL(`${served.url}/${attempt < 3 ? 'check-inbox' : 'subscribe'}`);
    }
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Too many attempts');
    await checkPage(page, 'error-429');

    expect(consoleErrors).toEqual([
      '404 /no-such-page',
      `404 /confirm/${'x'.repeat(43)}`,
      `410 ${new URL(confirmLink).pathname}`,
      '429 /subscribe',
    ]);
    await context.close();
  });
});
