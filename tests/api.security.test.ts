import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rows } from '../src/db/client.js';
import { APP_ORIGIN, Cookies, csrfIn, form } from './support/admin.js';
import type { ErrorAnswer } from './support/sendout.js';
import { addresses, answer, seedSubscribers } from './support/sendout.js';
import type { TestService } from './support/service.js';
import { createTestService, PUBLISHER_TOKEN } from './support/service.js';

const good = { slug: 'on-trust', title: 'On Trust', url: 'https://example.org/on-trust' };

describe('the publisher API lets in only the publisher token', () => {
  let s: TestService;
  beforeAll(async () => {
    s = await createTestService();
    await seedSubscribers(s.database.db, 'confirmed', addresses('reader', 3));
  });
  afterAll(() => s?.close());

  const post = (headers: Record<string, string>) =>
    s.app.request('/api/essays', {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(good),
    });
  const get = (headers: Record<string, string>) => s.app.request('/api/essays/on-trust', { headers });

  const refused: [string, Record<string, string>][] = [
    ['no Authorization header', {}],
    ['an empty Authorization header', { authorization: '' }],
    ['a wrong token of the same length', { authorization: `Bearer ${'x'.repeat(PUBLISHER_TOKEN.length)}` }],
    ['a shorter token', { authorization: `Bearer ${PUBLISHER_TOKEN.slice(0, -1)}` }],
    ['a longer token', { authorization: `Bearer ${PUBLISHER_TOKEN}0` }],
    ['the token as Basic credentials', { authorization: `Basic ${btoa(`publisher:${PUBLISHER_TOKEN}`)}` }],
    ['the token without a scheme', { authorization: PUBLISHER_TOKEN }],
    ['"Bearer" with no token', { authorization: 'Bearer ' }],
    ['the token in another header', { 'x-publisher-token': PUBLISHER_TOKEN }],
    ['a very long token', { authorization: `Bearer ${'x'.repeat(10_000)}` }],
    ['two tokens', { authorization: `Bearer ${PUBLISHER_TOKEN} ${PUBLISHER_TOKEN}` }],
  ];

  it.each(refused)('answers 401 to %s, with WWW-Authenticate and the same body', async (_, headers) => {
    const missing = await post({});
    const expected = await missing.json();
    for (const res of [await post(headers), await get(headers)]) {
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer\b/);
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      const body = (await res.json()) as ErrorAnswer;
      expect(body).toEqual(expected);
      expect(body.error.code).toBe('unauthorized');
    }
  });

  it('wrote nothing for any refused request', async () => {
    const [found] = await rows<{ n: number }>(s.database.db, sql`select count(*)::int as n from essays`);
    expect(Number(found?.n)).toBe(0);
    expect(s.smtp.received).toHaveLength(0);
  });

  it('accepts the scheme in any case ("bearer")', async () => {
    const res = await post({ authorization: `bearer ${PUBLISHER_TOKEN}` });
    expect(res.status).toBe(202);
    expect((await answer(res)).sendout.total).toBe(3);
    const read = await get({ authorization: `BEARER ${PUBLISHER_TOKEN}` });
    expect(read.status).toBe(200);
  });

  it('answers 401 before anything else, even for addresses that do not exist', async () => {
    const res = await s.app.request('/api/no-such-thing');
    expect(res.status).toBe(401);
    const known = await s.app.request('/api/no-such-thing', {
      headers: { authorization: `Bearer ${PUBLISHER_TOKEN}` },
    });
    expect(known.status).toBe(404);
    expect(((await known.json()) as ErrorAnswer).error.code).toBe('not_found');
  });
});

describe('wrong publisher tokens are rate-limited per client IP, on the API and the dashboard together', () => {
  let s: TestService;
  beforeAll(async () => {
    s = await createTestService({ WRONG_TOKEN_LIMIT_PER_IP: '3', TRUST_PROXY: 'true' });
  });
  afterAll(() => s?.close());

  const read = (token: string | undefined, ip: string) =>
    s.app.request('/api/essays/none', {
      headers: {
        'x-forwarded-for': ip,
        ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
      },
    });
  const wrong = 'wrong-token-0123456789abcdef';

  it('does not count the right token, nor a request without one', async () => {
    for (let i = 0; i < 5; i++) {
      expect((await read(PUBLISHER_TOKEN, '203.0.113.1')).status).toBe(404);
      expect((await read(undefined, '203.0.113.1')).status).toBe(401);
    }
    expect((await read(wrong, '203.0.113.1')).status).toBe(401);
  });

  it('answers 429 with Retry-After past the limit, then even to the right token, for that IP only', async () => {
    const ip = '203.0.113.2';
    for (let i = 0; i < 3; i++) expect((await read(wrong, ip)).status).toBe(401);
    const refused = await read(wrong, ip);
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(((await refused.json()) as ErrorAnswer).error.code).toBe('rate_limited');
    // A guesser past the limit can't tell a hit from a miss.
    expect((await read(PUBLISHER_TOKEN, ip)).status).toBe(429);
    expect((await read(PUBLISHER_TOKEN, '203.0.113.3')).status).toBe(404);
  });

  it('counts wrong tokens at the dashboard sign-in against the same limit', async () => {
    const ip = '203.0.113.4';
    // Three wrong on the API use the allowance up: the fourth, at the dashboard, is one too many.
    for (let i = 0; i < 3; i++) expect((await read(wrong, ip)).status).toBe(401);
    const page = await s.app.request('/admin/sign-in', { headers: { 'x-forwarded-for': ip } });
    const cookies = new Cookies().take(page);
    const { body, 'content-type': contentType } = form({
      csrf: csrfIn(await page.text()),
      token: wrong,
    });
    const signIn = await s.app.request('/admin/sign-in', {
      method: 'POST',
      headers: {
        'x-forwarded-for': ip,
        cookie: cookies.header(),
        'content-type': contentType,
        origin: APP_ORIGIN,
      },
      body,
    });
    expect(signIn.status).toBe(429);
  });
});

describe('the publisher API turns bad input into a clear 4xx and writes nothing', () => {
  let s: TestService;
  beforeAll(async () => {
    s = await createTestService();
    await seedSubscribers(s.database.db, 'confirmed', addresses('reader', 3));
  });
  afterAll(() => s?.close());

  const send = (body: string, contentType = 'application/json') =>
    s.app.request('/api/essays', {
      method: 'POST',
      headers: { authorization: `Bearer ${PUBLISHER_TOKEN}`, 'content-type': contentType },
      body,
    });

  const json = (v: unknown) => JSON.stringify(v);
  const { slug: _slug, ...withoutSlug } = good;
  const { title: _title, ...withoutTitle } = good;
  const { url: _url, ...withoutUrl } = good;

  const cases: [string, string, string | undefined, number][] = [
    ['no slug', json(withoutSlug), undefined, 422],
    ['no title', json(withoutTitle), undefined, 422],
    ['no url', json(withoutUrl), undefined, 422],
    ['an empty slug', json({ ...good, slug: '' }), undefined, 422],
    ['a blank title', json({ ...good, title: '   ' }), undefined, 422],
    ['a javascript: url', json({ ...good, url: 'javascript:alert(1)' }), undefined, 422],
    ['a data: url', json({ ...good, url: 'data:text/html,<script>alert(1)</script>' }), undefined, 422],
    ['a relative url', json({ ...good, url: '/essays/on-trust' }), undefined, 422],
    ['a slug with spaces', json({ ...good, slug: 'on trust' }), undefined, 422],
    ['a slug with a slash', json({ ...good, slug: '../etc/passwd' }), undefined, 422],
    ['a slug of 201 characters', json({ ...good, slug: 'a'.repeat(201) }), undefined, 422],
    ['a title that is a number', json({ ...good, title: 42 }), undefined, 422],
    ['a summary that is an object', json({ ...good, summary: { html: '<b>' } }), undefined, 422],
    ['an array', json([good]), undefined, 422],
    ['null', 'null', undefined, 422],
    ['a string', json('on-trust'), undefined, 422],
    ['malformed JSON', '{"slug":"on-trust",', undefined, 400],
    ['an empty body', '', undefined, 400],
    ['a form instead of JSON', 'slug=on-trust&title=On+Trust', 'application/x-www-form-urlencoded', 415],
    ['text/plain', json(good), 'text/plain', 415],
    ['no content type', json(good), '', 415],
    ['a body over the size limit', json({ ...good, summary: 'x'.repeat(20_000) }), undefined, 413],
  ];

  it.each(cases)('answers %s with a JSON error', async (_, body, contentType, status) => {
    const res = await send(body, contentType);
    expect(res.status).toBe(status);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    const answer = (await res.json()) as ErrorAnswer;
    expect(answer.error.code).toEqual(expect.any(String));
    expect(answer.error.message).toEqual(expect.any(String));
    expect(answer.error.message).not.toMatch(/at .+\.(ts|js):\d+/);
  });

  it('wrote no essay, no delivery and no email for any of them', async () => {
    const [found] = await rows<{ essays: number; deliveries: number }>(
      s.database.db,
      sql`select (select count(*) from essays)::int as essays, (select count(*) from deliveries)::int as deliveries`,
    );
    expect(found).toEqual({ essays: 0, deliveries: 0 });
    await s.drain();
    expect(s.smtp.received).toHaveLength(0);
  });

  it('names the field that is wrong', async () => {
    const res = await send(json({ ...good, url: 'javascript:alert(1)' }));
    const body = (await res.json()) as ErrorAnswer;
    expect(body.error.code).toBe('invalid_input');
    expect(body.error.message).toMatch(/^url: /);
  });

  it('answers 404 for an essay it does not know, and does not echo markup back as HTML', async () => {
    const res = await s.app.request(`/api/essays/${encodeURIComponent('<script>x</script>')}`, {
      headers: { authorization: `Bearer ${PUBLISHER_TOKEN}` },
    });
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(((await res.json()) as ErrorAnswer).error.code).toBe('not_found');
  });

  it('keeps a title with line breaks out of the letter headers', async () => {
    const res = await send(
      json({ ...good, slug: 'injected', title: 'Hello\r\nBcc: victim@example.net\r\nX-Injected: yes' }),
    );
    expect(res.status).toBe(202);
    await s.drain();
    expect(s.smtp.received.map((m) => m.to).sort()).toEqual(addresses('reader', 3));
    for (const mail of s.smtp.received) {
      const head = mail.raw.split(/\r?\n\r?\n/, 1)[0] ?? '';
      expect(head).not.toMatch(/^(bcc|x-injected):/im);
      expect(mail.parsed.subject).toBe('Hello Bcc: victim@example.net X-Injected: yes');
    }
  });

  it('still publishes a good essay afterwards', async () => {
    const res = await send(json({ ...good, slug: '  on-trust  ' }));
    expect(res.status).toBe(202);
    expect((await answer(res)).essay.slug).toBe('on-trust');
  });
});
