import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SESSION_COOKIE, sessionCookieValue } from '../src/admin/session.js';
import { rows } from '../src/db/client.js';
import { APP_ORIGIN, Cookies, csrfIn, signIn } from './support/admin.js';
import { addresses, seedSubscribers } from './support/sendout.js';
import type { TestService } from './support/service.js';
import { createTestService, PUBLIC_URL, PUBLISHER_TOKEN } from './support/service.js';

const ESSAY = { slug: 'on-locks', title: 'On locks', url: 'https://essays.example.test/locks', summary: '' };

/** Every page of the dashboard (GET, HTML). */
const PAGES = [
  '/admin',
  '/admin/publish',
  '/admin/sendouts/on-doors',
  '/admin/subscribers',
  '/admin/subscribers?q=reader',
  '/admin/subscribers/1',
  `/admin/publish/preview-frame?${new URLSearchParams(ESSAY)}`,
];
/** Every action (POST) behind a session. */
const ACTIONS = ['/admin/publish/preview', '/admin/publish', '/admin/sign-out'];
/** The JSON the page's script polls. */
const JSON_ENDPOINTS = ['/admin/sendouts/on-doors/progress'];

const SECRET = 'a-dashboard-session-secret-of-32-chars-or-more';

async function essayCount(s: TestService): Promise<number> {
  const [row] = await rows<{ n: number }>(s.database.db, sql`select count(*)::int as n from essays`);
  return Number(row?.n);
}

async function expectRefused(s: TestService, cookie: string | undefined) {
  const headers: Record<string, string> = cookie ? { cookie } : {};
  for (const path of PAGES) {
    const res = await s.app.request(path, { headers });
    expect(res.status, path).toBe(303);
    expect(res.headers.get('location'), path).toBe('/admin/sign-in');
  }
  for (const path of JSON_ENDPOINTS) {
    const res = await s.app.request(path, { headers: { ...headers, accept: 'application/json' } });
    expect(res.status, path).toBe(401);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('unauthorized');
  }
  for (const path of ACTIONS) {
    const res = await s.app.request(path, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ ...ESSAY, csrf: 'anything' }).toString(),
    });
    expect(res.status, path).toBe(401);
    expect(res.headers.get('set-cookie'), path).toBeNull();
  }
  expect(await essayCount(s)).toBe(0);
}

describe('the dashboard refuses anyone without a valid session', () => {
  let s: TestService;

  beforeAll(async () => {
    s = await createTestService({ ADMIN_SESSION_SECRET: SECRET, WRONG_TOKEN_LIMIT_PER_IP: '0' });
    await seedSubscribers(s.database.db, 'confirmed', addresses('reader', 2));
  });

  afterAll(async () => {
    await s?.close();
  });

  it('without a cookie: pages send to the sign-in form, actions and JSON answer 401', async () => {
    await expectRefused(s, undefined);
  });

  it('with a cookie whose signature is forged', async () => {
    const admin = await signIn(s);
    const real = admin.cookies.values.get(SESSION_COOKIE) as string;
    const [expiry, csrf, signature] = real.split('.') as [string, string, string];
    const flipped = signature.replace(/^./, (ch) => (ch === 'A' ? 'B' : 'A'));
    await expectRefused(s, `${SESSION_COOKIE}=${expiry}.${csrf}.${flipped}`);
    // A later expiry with the old signature: the expiry is signed too.
    await expectRefused(s, `${SESSION_COOKIE}=${Number(expiry) + 86_400_000}.${csrf}.${signature}`);
    // Signed with another key (the publisher token instead of ADMIN_SESSION_SECRET).
    const other = await sessionCookieValue(PUBLISHER_TOKEN, { csrf, expiresAt: Date.now() + 3_600_000 });
    await expectRefused(s, `${SESSION_COOKIE}=${other}`);
    await expectRefused(s, `${SESSION_COOKIE}=garbage`);
  });

  it('with a correctly signed cookie that has expired', async () => {
    const expired = await sessionCookieValue(SECRET, {
      csrf: 'AAAAAAAAAAAAAAAAAAAAAA',
      expiresAt: Date.now() - 1000,
    });
    await expectRefused(s, `${SESSION_COOKIE}=${expired}`);
    const valid = await sessionCookieValue(SECRET, {
      csrf: 'AAAAAAAAAAAAAAAAAAAAAA',
      expiresAt: Date.now() + 60_000,
    });
    expect(
      (await s.app.request('/admin', { headers: { cookie: `${SESSION_COOKIE}=${valid}` } })).status,
    ).toBe(200);
  });

  it('every action refuses a session without its CSRF token, or with another session’s', async () => {
    const admin = await signIn(s);
    const other = await signIn(s);
    expect(other.csrf).not.toBe(admin.csrf);
    for (const path of ACTIONS) {
      for (const csrf of [undefined, '', 'x'.repeat(43), other.csrf]) {
        const body = new URLSearchParams(csrf === undefined ? ESSAY : { ...ESSAY, csrf });
        const res = await s.app.request(path, {
          method: 'POST',
          headers: {
            cookie: admin.cookies.header(),
            'content-type': 'application/x-www-form-urlencoded',
            origin: APP_ORIGIN,
          },
          body: body.toString(),
        });
        expect(res.status, `${path} csrf=${csrf}`).toBe(403);
        expect(await res.text()).toContain('Reload the page and try again');
      }
    }
    expect(await essayCount(s)).toBe(0);
    // The session's own token works (the preview only shows, it publishes nothing).
    expect((await admin.post('/admin/publish/preview', ESSAY)).status).toBe(200);
    expect(await essayCount(s)).toBe(0);
  });

  it('every action refuses a form posted from another origin, even with the right token', async () => {
    const admin = await signIn(s);
    for (const path of ACTIONS) {
      const res = await s.app.request(path, {
        method: 'POST',
        headers: {
          cookie: admin.cookies.header(),
          origin: 'https://evil.example',
          'content-type': 'application/x-www-form-urlencoded',
        },
        body: new URLSearchParams({ ...ESSAY, csrf: admin.csrf }).toString(),
      });
      expect(res.status, path).toBe(403);
    }
    expect(await essayCount(s)).toBe(0);
  });

  it('over https the session cookie is Secure, HttpOnly, SameSite=Strict and only sent to /admin', async () => {
    const cookies = new Cookies();
    const form = await s.app.request(`${PUBLIC_URL}/admin/sign-in`);
    cookies.take(form);
    const res = await s.app.request(`${PUBLIC_URL}/admin/sign-in`, {
      method: 'POST',
      headers: {
        cookie: cookies.header(),
        'content-type': 'application/x-www-form-urlencoded',
        origin: PUBLIC_URL,
      },
      body: new URLSearchParams({ csrf: csrfIn(await form.text()), token: PUBLISHER_TOKEN }).toString(),
    });
    expect(res.status).toBe(303);
    const session = res.headers.getSetCookie().find((c) => c.startsWith(`${SESSION_COOKIE}=`)) ?? '';
    expect(session).toMatch(/; Secure/);
    expect(session).toMatch(/; HttpOnly/);
    expect(session).toMatch(/; SameSite=Strict/);
    expect(session).toMatch(/; Path=\/admin(;|$)/);
    expect(session).toMatch(/; Max-Age=43200/);
    const signInCookie = form.headers.getSetCookie()[0] ?? '';
    expect(signInCookie).toMatch(/; Secure/);
    expect(signInCookie).toMatch(/; HttpOnly/);
    expect(signInCookie).toMatch(/; SameSite=Strict/);
  });

  it('the sign-in form refuses a post without its CSRF token or cookie, or from another origin', async () => {
    const form = await s.app.request('/admin/sign-in');
    const cookies = new Cookies().take(form);
    const token = csrfIn(await form.text());
    const attempts: { cookie: string; body: Record<string, string>; origin?: string }[] = [
      { cookie: '', body: { csrf: token, token: PUBLISHER_TOKEN } },
      { cookie: cookies.header(), body: { token: PUBLISHER_TOKEN } },
      { cookie: cookies.header(), body: { csrf: 'x'.repeat(43), token: PUBLISHER_TOKEN } },
      {
        cookie: cookies.header(),
        body: { csrf: token, token: PUBLISHER_TOKEN },
        origin: 'https://evil.example',
      },
    ];
    for (const a of attempts) {
      const res = await s.app.request('/admin/sign-in', {
        method: 'POST',
        headers: {
          cookie: a.cookie,
          'content-type': 'application/x-www-form-urlencoded',
          origin: a.origin ?? APP_ORIGIN,
        },
        body: new URLSearchParams(a.body).toString(),
      });
      expect(res.status).toBe(403);
      expect(res.headers.getSetCookie().some((c) => c.startsWith(`${SESSION_COOKIE}=`))).toBe(false);
    }
  });

  it('a wrong token gets the form again with a 401 and no session', async () => {
    const form = await s.app.request('/admin/sign-in');
    const cookies = new Cookies().take(form);
    const res = await s.app.request('/admin/sign-in', {
      method: 'POST',
      headers: {
        cookie: cookies.header(),
        'content-type': 'application/x-www-form-urlencoded',
        origin: APP_ORIGIN,
      },
      body: new URLSearchParams({ csrf: csrfIn(await form.text()), token: `${PUBLISHER_TOKEN}x` }).toString(),
    });
    expect(res.status).toBe(401);
    const page = await res.text();
    expect(page).toContain('That is not the publisher token');
    // Where the token is, for an owner who never set PUBLISHER_TOKEN (npm start keeps it in a file).
    expect(page).toContain('data/publisher-token');
    expect(res.headers.getSetCookie().some((c) => c.startsWith(`${SESSION_COOKIE}=`))).toBe(false);
  });

  it('dashboard pages have a strict CSP of their own and are never cached', async () => {
    const admin = await signIn(s);
    const res = await admin.get('/admin');
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toContain('unsafe-inline');
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.headers.get('referrer-policy')).toBe('same-origin');
    expect(res.headers.get('x-frame-options')).toBe('DENY');
    const frame = await admin.get(`/admin/publish/preview-frame?${new URLSearchParams(ESSAY)}`);
    expect(frame.headers.get('content-security-policy')).toMatch(/sandbox;.*frame-ancestors 'self'/);
    expect(frame.headers.get('content-security-policy')).not.toContain('script-src');
    // The page asks for an origin-keyed agent cluster; the sandboxed frame (an opaque origin) asks for none.
    expect(res.headers.get('origin-agent-cluster')).toBe('?1');
    expect(frame.headers.get('origin-agent-cluster')).toBeNull();
  });

  it('what publishers and readers typed is shown as text, never as markup', async () => {
    await seedSubscribers(s.database.db, 'confirmed', ['"><script>alert(1)</script>@example.org']);
    const admin = await signIn(s);
    const evil = {
      ...ESSAY,
      slug: 'on-xss',
      title: '<img src=x onerror=alert(1)>',
      summary: '<script>x</script>',
    };
    const preview = await (await admin.post('/admin/publish/preview', evil)).text();
    expect(preview).not.toContain('<img src=x');
    expect(preview).not.toContain('<script>x');
    const search = await (await admin.get('/admin/subscribers?q=script')).text();
    expect(search).toContain('&lt;script&gt;alert(1)&lt;/script&gt;@example.org');
    expect(search).not.toContain('<script>alert(1)');
  });
});

describe('signing in is rate-limited like any other guess', () => {
  let s: TestService;

  beforeAll(async () => {
    s = await createTestService({ WRONG_TOKEN_LIMIT_PER_IP: '3' });
  });

  afterAll(async () => {
    await s?.close();
  });

  async function attempt(token: string): Promise<Response> {
    const form = await s.app.request('/admin/sign-in');
    const cookies = new Cookies().take(form);
    return s.app.request('/admin/sign-in', {
      method: 'POST',
      headers: {
        cookie: cookies.header(),
        'content-type': 'application/x-www-form-urlencoded',
        origin: APP_ORIGIN,
      },
      body: new URLSearchParams({ csrf: csrfIn(await form.text()), token }).toString(),
    });
  }

  it('a right token is never counted', async () => {
    for (let i = 0; i < 5; i++) expect((await attempt(PUBLISHER_TOKEN)).status).toBe(303);
  });

  it('after 3 wrong tokens the next answers 429, even with the right token; a session goes on', async () => {
    const admin = await signIn(s);
    for (let i = 0; i < 3; i++) expect((await attempt(`wrong-token-${i}-0123456789`)).status).toBe(401);
    const refused = await attempt('wrong-token-again-0123456789');
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    const message = await refused.text();
    expect(message).toContain('Too many wrong publisher tokens');
    // The way out, said where the owner locked out of their own service reads it.
    expect(message).toContain('a dashboard already signed in goes on working');
    expect(message).toContain('WRONG_TOKEN_LIMIT_PER_IP');
    const right = await attempt(PUBLISHER_TOKEN);
    expect(right.status).toBe(429);
    expect(right.headers.getSetCookie().some((c) => c.startsWith(`${SESSION_COOKIE}=`))).toBe(false);
    expect((await admin.get('/admin')).status).toBe(200);
  });
});

describe('dashboard forms work from whatever address the dashboard is opened at, and only from there', () => {
  /** The defaults: PUBLIC_URL is localhost, which is not where a self-hoster's browser always is. */
  let s: TestService;

  beforeAll(async () => {
    s = await createTestService({
      PUBLIC_URL: 'http://localhost:8787',
      ADMIN_SESSION_SECRET: SECRET,
      WRONG_TOKEN_LIMIT_PER_IP: '0',
    });
  });

  afterAll(async () => {
    await s?.close();
  });

  /** The sign-in form as a browser at `base` gets it: its cookie and its CSRF token. */
  async function signInForm(base: string): Promise<{ cookies: Cookies; csrf: string }> {
    const page = await s.app.request(`${base}/admin/sign-in`);
    return { cookies: new Cookies().take(page), csrf: csrfIn(await page.text()) };
  }

  function postForm(url: string, cookie: string, fields: Record<string, string>, headers = {}) {
    return s.app.request(url, {
      method: 'POST',
      headers: { cookie, 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body: new URLSearchParams(fields).toString(),
    });
  }

  /** Signs in at `base` as a browser there would (its Origin, Sec-Fetch-Site); the answer and the cookies. */
  async function signInAt(base: string) {
    const form = await signInForm(base);
    const res = await postForm(
      `${base}/admin/sign-in`,
      form.cookies.header(),
      { csrf: form.csrf, token: PUBLISHER_TOKEN },
      { origin: base, 'sec-fetch-site': 'same-origin' },
    );
    form.cookies.take(res);
    return { res, cookies: form.cookies };
  }

  function sessionCookieOf(res: Response): string | undefined {
    return res.headers.getSetCookie().find((c) => c.startsWith(`${SESSION_COOKIE}=`));
  }

  it('signs in at 127.0.0.1 although PUBLIC_URL says localhost, and the session works there', async () => {
    const base = 'http://127.0.0.1:8787';
    const { res, cookies } = await signInAt(base);
    expect(res.status).toBe(303);
    expect(sessionCookieOf(res)).toBeDefined();
    const overview = await s.app.request(`${base}/admin`, { headers: { cookie: cookies.header() } });
    expect(overview.status).toBe(200);
    const csrf = csrfIn(await overview.text());
    const preview = await postForm(
      `${base}/admin/publish/preview`,
      cookies.header(),
      { ...ESSAY, csrf },
      {
        origin: base,
      },
    );
    expect(preview.status).toBe(200);
  });

  it('signs in at the server’s IP, at localhost and at the public name; Secure cookies only over https', async () => {
    for (const base of ['http://192.168.1.20:8787', 'http://localhost:8787', 'http://news.example.test']) {
      const { res } = await signInAt(base);
      expect(res.status, base).toBe(303);
      // Browsers drop a Secure cookie set over plain http (but on localhost): the sign-in would not stick.
      expect(sessionCookieOf(res), base).not.toMatch(/; Secure/);
    }
    const { res } = await signInAt('https://news.example.test');
    expect(res.status).toBe(303);
    expect(sessionCookieOf(res)).toMatch(/; Secure/);
    expect(sessionCookieOf(res)).toMatch(/; HttpOnly/);
    expect(sessionCookieOf(res)).toMatch(/; SameSite=Strict/);
  });

  it('behind a trusted proxy the address is the one X-Forwarded-Proto and X-Forwarded-Host name', async () => {
    const proxied = await createTestService({ PUBLIC_URL: 'http://localhost:8787', TRUST_PROXY: 'true' });
    try {
      const page = await proxied.app.request('http://127.0.0.1:8787/admin/sign-in');
      const cookies = new Cookies().take(page);
      const res = await proxied.app.request('http://127.0.0.1:8787/admin/sign-in', {
        method: 'POST',
        headers: {
          cookie: cookies.header(),
          'content-type': 'application/x-www-form-urlencoded',
          origin: 'https://news.example.org',
          'x-forwarded-proto': 'https',
          'x-forwarded-host': 'news.example.org',
        },
        body: new URLSearchParams({ csrf: csrfIn(await page.text()), token: PUBLISHER_TOKEN }).toString(),
      });
      expect(res.status).toBe(303);
      expect(sessionCookieOf(res)).toMatch(/; Secure/);
    } finally {
      await proxied.close();
    }
  });

  it('sign-in refuses forged posts: another origin, no origin at all, a cross-site fetch, a replayed token', async () => {
    const base = 'http://127.0.0.1:8787';
    const form = await signInForm(base);
    const other = await signInForm(base);
    const fields = { csrf: form.csrf, token: PUBLISHER_TOKEN };
    const forgeries: [string, string, Record<string, string>, Record<string, string>][] = [
      ['a cross-site Origin', form.cookies.header(), fields, { origin: 'https://evil.example' }],
      ['another port', form.cookies.header(), fields, { origin: 'http://127.0.0.1:9999' }],
      ['https for http', form.cookies.header(), fields, { origin: 'https://127.0.0.1:8787' }],
      ['neither Origin nor Referer', form.cookies.header(), fields, {}],
      ['Origin null, no Referer', form.cookies.header(), fields, { origin: 'null' }],
      ['a cross-site Referer', form.cookies.header(), fields, { referer: 'https://evil.example/page' }],
      ['Sec-Fetch-Site: cross-site', form.cookies.header(), fields, { 'sec-fetch-site': 'cross-site' }],
      [
        'Sec-Fetch-Site: cross-site with a matching Origin',
        form.cookies.header(),
        fields,
        { origin: base, 'sec-fetch-site': 'cross-site' },
      ],
      [
        'Sec-Fetch-Site: same-site',
        form.cookies.header(),
        fields,
        { origin: base, 'sec-fetch-site': 'same-site' },
      ],
      [
        'X-Forwarded-Host, untrusted',
        form.cookies.header(),
        fields,
        {
          origin: 'https://evil.example',
          'x-forwarded-host': 'evil.example',
          'x-forwarded-proto': 'https',
        },
      ],
      ['the token without its nonce cookie', '', fields, { origin: base }],
      ['the token with another form’s cookie', other.cookies.header(), fields, { origin: base }],
      ['no token', form.cookies.header(), { token: PUBLISHER_TOKEN }, { origin: base }],
    ];
    for (const [what, cookie, body, headers] of forgeries) {
      const res = await postForm(`${base}/admin/sign-in`, cookie, body, headers);
      expect(res.status, what).toBe(403);
      expect(sessionCookieOf(res), what).toBeUndefined();
    }
    // The same form, posted as the browser does, signs in (nothing above used it up).
    const res = await postForm(`${base}/admin/sign-in`, form.cookies.header(), fields, { origin: base });
    expect(res.status).toBe(303);
  });

  it('every action refuses forged posts, even from a signed-in browser: origin, Sec-Fetch-Site, token', async () => {
    const base = 'http://127.0.0.1:8787';
    const { cookies } = await signInAt(base);
    const { cookies: otherCookies } = await signInAt(base);
    const csrf = csrfIn(
      await (await s.app.request(`${base}/admin`, { headers: { cookie: cookies.header() } })).text(),
    );
    const otherCsrf = csrfIn(
      await (await s.app.request(`${base}/admin`, { headers: { cookie: otherCookies.header() } })).text(),
    );
    expect(otherCsrf).not.toBe(csrf);
    const forgeries: [string, Record<string, string>, Record<string, string>][] = [
      ['a cross-site Origin', { csrf }, { origin: 'https://evil.example' }],
      ['neither Origin nor Referer', { csrf }, {}],
      ['a cross-site Referer', { csrf }, { referer: 'https://evil.example/' }],
      ['Sec-Fetch-Site: cross-site', { csrf }, { 'sec-fetch-site': 'cross-site' }],
      [
        'Sec-Fetch-Site: cross-site, matching Origin',
        { csrf },
        { origin: base, 'sec-fetch-site': 'cross-site' },
      ],
      ['a valid Origin, no token', {}, { origin: base }],
      ['a valid Origin, a wrong token', { csrf: 'x'.repeat(22) }, { origin: base }],
      ['a valid Origin, another session’s token', { csrf: otherCsrf }, { origin: base }],
    ];
    for (const path of ACTIONS) {
      for (const [what, fields, headers] of forgeries) {
        const res = await postForm(`${base}${path}`, cookies.header(), { ...ESSAY, ...fields }, headers);
        expect(res.status, `${path}: ${what}`).toBe(403);
        expect(sessionCookieOf(res), `${path}: ${what}`).toBeUndefined();
      }
    }
    expect(await essayCount(s)).toBe(0);
    // Without Origin, a Referer from the dashboard itself is enough (with the token).
    const viaReferer = await postForm(
      `${base}/admin/publish/preview`,
      cookies.header(),
      { ...ESSAY, csrf },
      {
        referer: `${base}/admin/publish`,
      },
    );
    expect(viaReferer.status).toBe(200);
  });
});
