import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signIn } from './support/admin.js';
import type { TestService } from './support/service.js';
import { createTestService, PUBLIC_URL } from './support/service.js';

/**
 * Browsers ask every site for an icon. The service has one, every page links it, the pages' CSP lets the
 * browser load it, and the address browsers try on their own answers without an error.
 */

let s: TestService;

beforeAll(async () => {
  s = await createTestService();
});

afterAll(async () => {
  await s?.close();
});

/** The origins a page's CSP allows for one directive. */
function allowed(res: Response, directive: string): string[] {
  const policy = res.headers.get('content-security-policy') ?? '';
  const found = policy
    .split(';')
    .map((d) => d.trim().split(/\s+/))
    .find(([name]) => name === directive);
  return found?.slice(1) ?? [];
}

function iconLinks(html: string): string[] {
  return [...html.matchAll(/<link[^>]*rel="icon"[^>]*href="([^"]+)"/g)].map((m) => m[1] ?? '');
}

describe('the favicon', () => {
  it('is served at /favicon.svg as an SVG image, cacheable', async () => {
    const res = await s.app.request('/favicon.svg');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^image\/svg\+xml/);
    expect(res.headers.get('cache-control')).toMatch(/^public, max-age=\d+$/);
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(await res.text()).toMatch(/^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"[\s\S]*<\/svg>\s*$/);
  });

  it('/favicon.ico, which browsers ask for on their own, answers 204 and is cached: no 404 in the console', async () => {
    const res = await s.app.request('/favicon.ico');
    expect(res.status).toBe(204);
    expect(res.headers.get('cache-control')).toMatch(/^public, max-age=\d+$/);
    expect(await res.text()).toBe('');
  });

  it("the readers' pages link the icon, and their CSP lets the browser load it", async () => {
    for (const path of ['/check-inbox', '/form', '/nothing-here']) {
      const res = await s.app.request(path, { headers: { accept: 'text/html' } });
      const links = iconLinks(await res.text());
      expect(links, path).toEqual([`${PUBLIC_URL}/favicon.svg`]);
      expect(allowed(res, 'img-src'), path).toContain(PUBLIC_URL);
    }
  });

  it("the dashboard's pages link the icon where they were opened, and their own CSP lets it load", async () => {
    const admin = await signIn(s);
    for (const path of ['/admin', '/admin/sign-in']) {
      const res = path === '/admin/sign-in' ? await s.app.request(path) : await admin.get(path);
      expect(res.status, path).toBe(200);
      expect(iconLinks(await res.text()), path).toEqual(['/favicon.svg']);
      expect(allowed(res, 'img-src'), path).toContain("'self'");
    }
  });
});
