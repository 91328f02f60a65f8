import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestService } from './support/service.js';
import { createTestService, PUBLIC_URL } from './support/service.js';

/** Issue 23: what a crawler, a search result and a reader who mistyped their address meet. */
let s: TestService;
beforeAll(async () => {
  s = await createTestService({ SITE_NAME: 'Test Essays' });
});
afterAll(async () => {
  await s?.close();
});

describe("the readers' pages", () => {
  it('/robots.txt keeps crawlers off the links from emails, the API and the dashboard', async () => {
    const res = await s.app.request('/robots.txt');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await res.text();
    for (const path of ['/confirm/', '/unsubscribe/', '/api/', '/admin'])
      expect(text).toContain(`Disallow: ${path}`);
    expect(text).not.toMatch(/Disallow: \/\s*$/m);
  });

  it('carry a meta description', async () => {
    const html = await (await s.app.request('/form')).text();
    expect(html).toContain(
      '<meta name="description" content="Test Essays: one letter per essay, never more.">',
    );
  });

  it('a refused address comes back with the form to try again', async () => {
    const res = await s.app.request('/subscribe', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'email=not-an-address',
    });
    expect(res.status).toBe(422);
    const html = await res.text();
    expect(html).toContain('Try again');
    expect(html).toContain(`<form method="post" action="${PUBLIC_URL}/subscribe"`);
  });
});
