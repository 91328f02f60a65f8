import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../src/app.js';
import { rows } from '../src/db/client.js';
import type { Deps } from '../src/deps.js';
import { createLogger, silentLogger } from '../src/log.js';
import { createRenderer } from '../src/mail/render.js';
import { loadTemplates } from '../src/mail/templates-fs.js';
import type { TestDatabase } from './support/db.js';
import { createTestDatabase } from './support/db.js';
import { errorIn, postForm, postJson, subscribersFor, tableCounts } from './support/reader.js';
import type { TestService } from './support/service.js';
import {
  confirmTokenIn,
  createTestService,
  PUBLIC_URL,
  PUBLISHER_TOKEN,
  unsubscribeTokenIn,
} from './support/service.js';

const BROWSER = { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' };
const JSON_CLIENT = { accept: 'application/json' };

/** The header block of a raw email, with folded lines unfolded. */
const headBlock = (raw: string) => (raw.split(/\r?\n\r?\n/, 1)[0] ?? '').replace(/\r?\n[ \t]+/g, ' ');

/** Subscribes, mails and follows the confirmation link: a confirmed reader. */
async function confirmedReader(s: TestService, email: string): Promise<void> {
  expect((await s.subscribeJson(email)).status).toBe(202);
  await s.drain();
  const token = confirmTokenIn(s.smtp.to(email).at(-1)?.parsed.text);
  expect((await s.app.request(`/confirm/${token}`, { method: 'POST' })).status).toBe(200);
}

describe('injection-shaped input is refused or stored inertly, and never reaches mail headers', () => {
  let s: TestService;
  beforeAll(async () => {
    s = await createTestService({ CONFIRM_RESEND_MINUTES: '0' });
  });
  afterAll(() => s?.close());

  it.each([
    "a'); drop table subscribers;--@x.org",
    "x@x.org'; delete from subscribers;--",
    "' or '1'='1@x.org",
    '"; drop table subscribers;--"@x.org',
    'ann@example.org\r\nBcc: victim@example.net',
    'ann@example.org\rBcc: victim@example.net',
    'ann@example.org%0d%0aBcc:victim@example.net',
    'ann@example.org>\r\nBcc: <victim@example.net',
    'Ann <ann@example.org>, victim@example.net',
    'ann@example.org,victim@example.net',
    'ann@example.org\r\n\r\nA body of our own',
  ])('the address %j is refused with 422 invalid_email, and nothing is written', async (email) => {
    const before = await tableCounts(s.database.db);
    for (const res of [
      await postJson(s, '/subscribe', { email }),
      await postForm(s, '/subscribe', { email }, JSON_CLIENT),
    ]) {
      expect(res.status).toBe(422);
      expect((await errorIn(res)).code).toBe('invalid_email');
    }
    expect(await tableCounts(s.database.db)).toEqual(before);
  });

  it.each([
    'Ann\r\nBcc: victim@example.net',
    'Ann\nBcc: victim@example.net',
    'Ann\rBcc: victim@example.net',
    'Ann\u0085Bcc: victim@example.net',
    'Ann\u2028Bcc: victim@example.net',
    'Ann\u0000',
    'Ann\u001b[31m',
    'Ann\tReader',
  ])('the name %j (a line break or control character) is refused with a clear 422', async (name) => {
    const before = await tableCounts(s.database.db);
    const json = await postJson(s, '/subscribe', { email: 'named@example.org', name });
    expect(json.status).toBe(422);
    const error = await errorIn(json);
    expect(error.code).toBe('invalid_input');
    expect(error.message).toMatch(/name may not contain line breaks or control characters/);
    const page = await postForm(s, '/subscribe', { email: 'named@example.org', name }, BROWSER);
    expect(page.status).toBe(422);
    expect(await page.text()).toContain('The name may not contain line breaks or control characters');
    expect(await tableCounts(s.database.db)).toEqual(before);
  });

  it('an SQL-shaped name and an apostrophe in an address are stored as typed, and the tables are intact', async () => {
    const name = "Robert'); DROP TABLE subscribers;--";
    const email = "o'reilly@example.org";
    expect((await s.subscribeJson(email, name)).status).toBe(202);
    await s.drain();
    const mail = s.smtp.to(email);
    expect(mail).toHaveLength(1);
    expect(mail[0]?.parsed.text).toContain(`Hello ${name},`);
    const token = confirmTokenIn(mail[0]?.parsed.text);
    expect((await s.app.request(`/confirm/${token}`, { method: 'POST' })).status).toBe(200);
    expect(await subscribersFor(s.database.db, email)).toMatchObject([{ email, name, status: 'confirmed' }]);
    const [tables] = await rows<{ n: number }>(
      s.database.db,
      sql`select count(*)::int as n from information_schema.tables
          where table_name in ('subscribers', 'confirmations', 'essays', 'deliveries')`,
    );
    expect(Number(tables?.n)).toBe(4);
  });

  it('a name that looks like an encoded header stays text: the letter has one recipient and no extra header', async () => {
    const name = '=?utf-8?Q?Ann=0D=0ABcc:_victim@example.net?=';
    const email = 'encoded-word@example.org';
    expect((await s.subscribeJson(email, name)).status).toBe(202);
    await s.drain();
    const [mail] = s.smtp.to(email);
    expect(mail?.parsed.text).toContain(name);
    // The name goes into bodies only: the headers are the same as for a reader without one.
    expect((await s.subscribeJson('plain@example.org')).status).toBe(202);
    await s.drain();
    const plain = s.smtp.to('plain@example.org')[0];
    const names = (raw: string) =>
      headBlock(raw)
        .split(/\r?\n/)
        .map((line) => line.split(':')[0]?.toLowerCase())
        .sort();
    expect(names(mail?.raw ?? '')).toEqual(names(plain?.raw ?? ''));
  });

  it('across everything mailed here: one recipient per email, no Bcc or Cc, nothing to the victim', async () => {
    await confirmedReader(s, 'reader@example.org');
    expect((await s.publish({ slug: 'safe', title: 'Safe', url: 'https://example.org/safe' })).status).toBe(
      202,
    );
    await s.drain();
    expect(s.smtp.received.length).toBeGreaterThanOrEqual(5);
    expect(s.smtp.to('victim@example.net')).toHaveLength(0);
    for (const mail of s.smtp.received) {
      const head = headBlock(mail.raw);
      expect(head).not.toMatch(/^(bcc|cc|x-injected):/im);
      const to = mail.parsed.to && !Array.isArray(mail.parsed.to) ? mail.parsed.to.value : [];
      expect(to.map((a) => a.address?.toLowerCase())).toEqual([mail.to]);
    }
  });
});

/** The directives of a Content-Security-Policy header, by name. */
function csp(res: Response): Record<string, string> {
  const header = res.headers.get('content-security-policy') ?? '';
  return Object.fromEntries(
    header
      .split(';')
      .map((d) => d.trim())
      .filter(Boolean)
      .map((d) => {
        const [name = '', ...values] = d.split(/\s+/);
        return [name, values.join(' ')];
      }),
  );
}

describe('secure headers on every answer', () => {
  let s: TestService;
  let confirmToken = '';
  let unsubscribeToken = '';
  const answers: { what: string; res: Response; body: string }[] = [];

  beforeAll(async () => {
    s = await createTestService({ SUBSCRIBE_LIMIT_PER_ADDRESS: '1', CONFIRM_RESEND_MINUTES: '0' });
    await confirmedReader(s, 'reader@example.org');
    expect((await s.publish({ slug: 'h', title: 'H', url: 'https://example.org/h' })).status).toBe(202);
    await s.drain();
    unsubscribeToken = unsubscribeTokenIn(s.smtp.to('reader@example.org').at(-1)?.parsed.text);
    expect((await s.subscribeJson('pending@example.org')).status).toBe(202);
    await s.drain();
    confirmToken = confirmTokenIn(s.smtp.to('pending@example.org').at(-1)?.parsed.text);

    const auth = { authorization: `Bearer ${PUBLISHER_TOKEN}` };
    const requests: [string, string, RequestInit?][] = [
      ['check-inbox page', '/check-inbox'],
      ['confirm page', `/confirm/${confirmToken}`],
      ['confirmed page', `/confirm/${confirmToken}`, { method: 'POST' }],
      ['unsubscribe page', `/unsubscribe/${unsubscribeToken}`],
      ['unsubscribed page', `/unsubscribe/${unsubscribeToken}`, { method: 'POST' }],
      ['unknown link page', `/confirm/${'A'.repeat(43)}`],
      ['unknown link JSON', `/unsubscribe/${'A'.repeat(43)}`, { method: 'POST', headers: JSON_CLIENT }],
      ['not found page', '/nothing-here'],
      ['not found JSON', '/nothing-here', { headers: JSON_CLIENT }],
      [
        '422 page',
        '/subscribe',
        { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'email=x' },
      ],
      [
        '422 JSON',
        '/subscribe',
        { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"email":"x"}' },
      ],
      ['415 JSON', '/subscribe', { method: 'POST', headers: JSON_CLIENT, body: 'email=x' }],
      [
        '303 redirect',
        '/subscribe',
        {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: 'email=once%40example.org',
        },
      ],
      [
        '429 page',
        '/subscribe',
        {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', ...BROWSER },
          body: 'email=once%40example.org',
        },
      ],
      [
        '202 JSON',
        '/subscribe',
        {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: '{"email":"j@example.org"}',
        },
      ],
      ['401 JSON', '/api/essays/h'],
      ['publisher JSON', '/api/essays/h', { headers: auth }],
      ['healthz', '/healthz'],
      ['readyz', '/readyz'],
      ['stylesheet', '/assets/style.css'],
    ];
    for (const [what, path, init] of requests) {
      const res = await s.app.request(path, init);
      answers.push({ what, res, body: await res.text() });
    }
  });
  afterAll(() => s?.close());

  it('the requests got the answers they were meant to (pages, errors, redirects, JSON)', () => {
    expect(answers.map((a) => [a.what, a.res.status])).toEqual([
      ['check-inbox page', 200],
      ['confirm page', 200],
      ['confirmed page', 200],
      ['unsubscribe page', 200],
      ['unsubscribed page', 200],
      ['unknown link page', 404],
      ['unknown link JSON', 404],
      ['not found page', 404],
      ['not found JSON', 404],
      ['422 page', 422],
      ['422 JSON', 422],
      ['415 JSON', 415],
      ['303 redirect', 303],
      ['429 page', 429],
      ['202 JSON', 202],
      ['401 JSON', 401],
      ['publisher JSON', 200],
      ['healthz', 200],
      ['readyz', 200],
      ['stylesheet', 200],
    ]);
  });

  it('every answer carries the CSP, nosniff, frame denial and no-referrer (the confirm page: its origin only)', () => {
    for (const { what, res } of answers) {
      expect(csp(res), what).toEqual({
        'default-src': "'none'",
        'style-src': `'self' ${PUBLIC_URL}`,
        'img-src': `'self' ${PUBLIC_URL}`,
        'form-action': `'self' ${PUBLIC_URL}`,
        'frame-ancestors': "'none'",
        'base-uri': "'none'",
      });
      expect(res.headers.get('x-content-type-options'), what).toBe('nosniff');
      expect(res.headers.get('x-frame-options'), what).toBe('DENY');
      // The confirm page's button posts with its origin named (consent on record), never its token's path.
      expect(res.headers.get('referrer-policy'), what).toBe(
        what === 'confirm page' ? 'strict-origin' : 'no-referrer',
      );
      // The rest of the set, the same on every answer.
      expect(res.headers.get('cross-origin-opener-policy'), what).toBe('same-origin');
      expect(res.headers.get('origin-agent-cluster'), what).toBe('?1');
      expect(res.headers.get('strict-transport-security'), what).toBe('max-age=15552000; includeSubDomains');
      expect(res.headers.get('x-dns-prefetch-control'), what).toBe('off');
      expect(res.headers.get('x-download-options'), what).toBe('noopen');
      expect(res.headers.get('x-permitted-cross-domain-policies'), what).toBe('none');
      expect(res.headers.get('x-xss-protection'), what).toBe('0');
    }
  });

  it('the pages whose address holds a token are not cached either', () => {
    for (const { what, res } of answers.filter((a) =>
      /^(confirm|confirmed|unsubscribe|unsubscribed) page$/.test(a.what),
    )) {
      expect(res.headers.get('cache-control'), what).toBe('no-store');
    }
  });

  it('the CSP allows what the pages use and they use nothing else: our stylesheet and icon, and forms posting to us', () => {
    const pages = answers.filter((a) => a.res.headers.get('content-type')?.startsWith('text/html'));
    expect(pages.length).toBeGreaterThanOrEqual(8);
    for (const { what, res, body } of pages) {
      const policy = csp(res);
      const allowed = (directive: string, url: string) => {
        const origin = new URL(url, PUBLIC_URL).origin;
        return (policy[directive] ?? '').split(' ').includes(origin);
      };
      const styles = [...body.matchAll(/<link[^>]*rel="stylesheet"[^>]*href="([^"]+)"/g)].map(
        (m) => m[1] ?? '',
      );
      expect(styles, what).toEqual([`${PUBLIC_URL}/assets/style.css`]);
      for (const href of styles) expect(allowed('style-src', href), `${what}: ${href}`).toBe(true);
      const icons = [...body.matchAll(/<link[^>]*rel="icon"[^>]*href="([^"]+)"/g)].map((m) => m[1] ?? '');
      expect(icons, what).toEqual([`${PUBLIC_URL}/favicon.svg`]);
      for (const href of icons) expect(allowed('img-src', href), `${what}: ${href}`).toBe(true);
      for (const [, action = ''] of body.matchAll(/<form[^>]*action="([^"]+)"/g)) {
        expect(allowed('form-action', action), `${what}: ${action}`).toBe(true);
      }
      // Anything else would be blocked by default-src 'none', so the pages must not need it.
      expect(body, what).not.toMatch(/<script|<style|\sstyle=|<img|<iframe|<object|<embed|\son\w+=/i);
    }
  });
});

describe('the request path is the same for every address (no enumeration)', () => {
  let s: TestService;
  let app: TestService['app'];
  let kicks = 0;
  beforeAll(async () => {
    s = await createTestService();
    // The app as node.ts builds it, with a kick that wakes the dispatcher.
    app = createApp({
      config: s.config,
      database: s.database,
      renderer: createRenderer(loadTemplates()),
      log: silentLogger,
      kick: () => {
        kicks++;
      },
    });
  });
  afterAll(() => s?.close());

  interface Rows {
    subscribers: Record<string, unknown>[];
    confirmations: Record<string, unknown>[];
  }
  const dump = async (): Promise<Rows> => ({
    subscribers: await rows(s.database.db, sql`select * from subscribers order by id`),
    confirmations: await rows(s.database.db, sql`select * from confirmations order by id`),
  });

  it('new, pending, confirmed and unsubscribed: one upsert, one queued confirmation, no email, one kick', async () => {
    expect((await s.subscribeJson('pending@example.org')).status).toBe(202);
    await confirmedReader(s, 'confirmed@example.org');
    await confirmedReader(s, 'gone@example.org');
    const [gone] = await subscribersFor(s.database.db, 'gone@example.org');
    expect((await s.app.request(`/unsubscribe/${gone?.unsubscribe_token}`, { method: 'POST' })).status).toBe(
      200,
    );
    await s.drain();

    const cases = [
      ['new@example.org', undefined],
      ['pending@example.org', 'pending'],
      ['confirmed@example.org', 'confirmed'],
      ['gone@example.org', 'unsubscribed'],
    ] as const;
    const changes = [];
    for (const [email, status] of cases) {
      expect((await subscribersFor(s.database.db, email))[0]?.status).toBe(status);
      const mailed = s.smtp.received.length;
      const kicked = kicks;
      const before = await dump();
      const res = await app.request('/subscribe', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email, name: 'Someone' }),
      });
      expect(res.status).toBe(202);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(s.smtp.received.length, `${email}: an email went out on the request path`).toBe(mailed);
      expect(kicks - kicked).toBe(1);
      const after = await dump();

      const [subscriber] = await subscribersFor(s.database.db, email);
      const id = subscriber?.id;
      // Rows that are not this address's are untouched.
      const others = (list: Record<string, unknown>[], key: string) => list.filter((r) => r[key] !== id);
      expect(others(after.subscribers, 'id')).toEqual(others(before.subscribers, 'id'));
      expect(after.confirmations.slice(0, before.confirmations.length)).toEqual(before.confirmations);

      // This address's subscriber row: inserted as pending, or only its updated_at moved.
      const was = before.subscribers.find((r) => r.id === id);
      const now = after.subscribers.find((r) => r.id === id);
      const { updated_at: _was, ...wasRest } = was ?? {};
      const { updated_at: _now, ...nowRest } = now ?? {};
      if (was) expect(nowRest).toEqual(wasRest);
      else expect(now?.status).toBe('pending');

      const added = after.confirmations.slice(before.confirmations.length);
      changes.push({
        subscribers: after.subscribers.length - before.subscribers.length,
        added: added.map(({ id: _i, subscriber_id, requested_at: _r, ...rest }) => ({
          ...rest,
          ours: subscriber_id === id,
        })),
      });
    }
    // The same change for every kind of address: one queued confirmation request, nothing decided yet.
    const queued = [
      {
        ours: true,
        name: 'Someone',
        status: 'queued',
        token_hash: null,
        attempts: 0,
        not_before: null,
        last_error: null,
        sent_at: null,
        expires_at: null,
        confirmed_at: null,
        // Consent on record (issue 26): this request sent no Referer, Origin or User-Agent.
        page: null,
        user_agent: null,
        ip: null,
        text_version: expect.stringMatching(/^sha256:[0-9a-f]{16}$/),
        confirm_page: null,
        confirm_user_agent: null,
        confirm_ip: null,
        confirm_text_version: null,
      },
    ];
    expect(changes).toEqual([
      { subscribers: 1, added: queued },
      { subscribers: 0, added: queued },
      { subscribers: 0, added: queued },
      { subscribers: 0, added: queued },
    ]);
  });
});

describe('the publisher token in logs', () => {
  let s: TestService;
  let down: TestDatabase;
  beforeAll(async () => {
    [s, down] = await Promise.all([createTestService(), createTestDatabase()]);
    await down.destroy();
  });
  afterAll(() => s?.close());

  it('is never logged, right or wrong, in a header or a query string, even when a request fails', async () => {
    const lines: string[] = [];
    const log = createLogger((line) => lines.push(line));
    const deps: Deps = {
      config: s.config,
      database: s.database,
      renderer: createRenderer(loadTemplates()),
      log,
    };
    const app = createApp(deps);
    const broken = createApp({ ...deps, database: down });
    const wrong = 'wrong-publisher-token-9876543210';
    const essay = JSON.stringify({ slug: 'logged', title: 'Logged', url: 'https://example.org/logged' });
    const as = (token: string, init: RequestInit = {}) => ({
      ...init,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    });

    expect((await app.request('/api/essays/logged', as(wrong))).status).toBe(401);
    expect((await app.request('/api/essays', as(wrong, { method: 'POST', body: essay }))).status).toBe(401);
    expect(
      (await app.request('/api/essays', as(PUBLISHER_TOKEN, { method: 'POST', body: essay }))).status,
    ).toBe(202);
    expect((await app.request('/api/essays/logged', as(PUBLISHER_TOKEN))).status).toBe(200);
    expect((await app.request(`/api/essays/logged?token=${PUBLISHER_TOKEN}`, as(wrong))).status).toBe(401);
    expect((await broken.request('/api/essays/logged', as(PUBLISHER_TOKEN))).status).toBeGreaterThanOrEqual(
      500,
    );
    expect(
      (await broken.request('/api/essays', as(PUBLISHER_TOKEN, { method: 'POST', body: essay }))).status,
    ).toBe(503);

    const all = lines.join('');
    expect(all).toContain('"status":401');
    expect(all).toContain('"status":202');
    expect(all).toContain('"level":"error"');
    expect(all).not.toContain(PUBLISHER_TOKEN);
    expect(all).not.toContain(wrong);
    expect(all).not.toContain(PUBLISHER_TOKEN.slice(0, 12));
  });
});
