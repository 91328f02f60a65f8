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

describe("the service's own address", () => {
  /** The targets of a page's links, as written. */
  const links = (html: string) => [...html.matchAll(/<a [^>]*href="([^"]*)"/g)].map((m) => m[1]);
  const selfLink = (html: string, url: string) =>
    links(html).some((href) => href?.replace(/\/+$/, '') === url.replace(/\/+$/, ''));

  it('/ tells a newcomer what this is, with the way to subscribe and to the dashboard', async () => {
    const res = await s.app.request('/', { headers: { accept: 'text/html' } });
    expect(res.status).toBe(200);
    const html = await res.text();
    expect(html).toContain('the newsletter of Test Essays');
    expect(links(html)).toEqual(expect.arrayContaining([`${PUBLIC_URL}/form`, `${PUBLIC_URL}/admin`]));
    // SITE_URL unset: the site's address is this page, and nothing on it links to itself.
    expect(selfLink(html, PUBLIC_URL)).toBe(false);
    expect(html).toContain('SITE_URL');
  });

  it('a page not found leads back somewhere that is not itself, and is not a page not found', async () => {
    const res = await s.app.request('/no-such-page', { headers: { accept: 'text/html' } });
    expect(res.status).toBe(404);
    const html = await res.text();
    expect(selfLink(html, `${PUBLIC_URL}/no-such-page`)).toBe(false);
    const back = links(html).find((href) => href?.startsWith(PUBLIC_URL));
    expect(back).toBe(PUBLIC_URL);
    const there = await s.app.request(new URL(back ?? '').pathname || '/');
    expect(there.status).toBe(200);
  });

  it('a page not found at SITE_URL itself (a wrong setting) does not link to itself', async () => {
    const other = await createTestService({ SITE_URL: `${PUBLIC_URL}/home/` });
    try {
      const res = await other.app.request('/home', { headers: { accept: 'text/html' } });
      expect(res.status).toBe(404);
      const html = await res.text();
      expect(selfLink(html, `${PUBLIC_URL}/home`)).toBe(false);
      expect(html).not.toContain('Back to');
      // Elsewhere, the links lead to SITE_URL as set.
      const home = await other.app.request('/');
      expect(links(await home.text())).toContain(`${PUBLIC_URL}/home`);
    } finally {
      await other.close();
    }
  });

  it('with SITE_URL set to the site, / and a page not found lead back to the site', async () => {
    const other = await createTestService({ SITE_URL: 'https://essays.example.test/' });
    try {
      for (const path of ['/', '/no-such-page']) {
        const html = await (await other.app.request(path)).text();
        expect(links(html), path).toContain('https://essays.example.test');
        expect(html, path).toContain('Back to Test Essays');
        expect(html, path).not.toContain('SITE_URL');
      }
    } finally {
      await other.close();
    }
  });
});
