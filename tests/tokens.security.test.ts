import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import { simpleParser } from 'mailparser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../src/app.js';
import { rows } from '../src/db/client.js';
import type { Deps } from '../src/deps.js';
import { createDispatcher } from '../src/dispatch/dispatcher.js';
import { createLogger } from '../src/log.js';
import { createOutboxMailer } from '../src/mail/outbox.js';
import { createRenderer } from '../src/mail/render.js';
import { loadTemplates } from '../src/mail/templates-fs.js';
import { isTokenShape, newTokens } from '../src/tokens.js';
import type { TestDatabase } from './support/db.js';
import { createTestDatabase } from './support/db.js';
import {
  errorIn,
  headersWithoutDate,
  postForm,
  postJson,
  readerTables,
  subscribersFor,
} from './support/reader.js';
import type { TestService } from './support/service.js';
import {
  confirmTokenIn,
  createTestService,
  PUBLIC_URL,
  PUBLISHER_TOKEN,
  unsubscribeTokenIn,
} from './support/service.js';

const SITE = 'https://site.example';
const JSON_CLIENT = { accept: 'application/json' };

/** Subscribes, mails the confirmation and returns the token in its link. */
async function subscribeAndGetToken(s: TestService, email: string): Promise<string> {
  const before = s.smtp.to(email).length;
  expect((await s.subscribeJson(email)).status).toBe(202);
  await s.drain();
  const mails = s.smtp.to(email);
  expect(mails).toHaveLength(before + 1);
  return confirmTokenIn(mails.at(-1)?.parsed.text);
}

/** A confirmed subscriber who got one essay: returns the unsubscribe token in that letter. */
async function readerWithLetter(s: TestService, email: string, slug: string): Promise<string> {
  const token = await subscribeAndGetToken(s, email);
  expect((await s.app.request(`/confirm/${token}`, { method: 'POST' })).status).toBe(200);
  expect((await s.publish({ slug, title: slug, url: `https://example.org/${slug}` })).status).toBe(202);
  await s.drain();
  return unsubscribeTokenIn(s.smtp.to(email).at(-1)?.raw);
}

/** Strings shaped nothing like a token, each as it would appear in a path. */
const malformedTokens = [
  'abc',
  'a'.repeat(42),
  'a'.repeat(44),
  'a'.repeat(5000),
  `${'a'.repeat(42)}%21`,
  `${'a'.repeat(42)}.`,
  encodeURIComponent("' or '1'='1"),
  encodeURIComponent('é'.repeat(43)),
  `${'a'.repeat(42)}%00`,
  '..%2F..%2F..%2Fetc%2Fpasswd',
  '%2e%2e%2f%2e%2e%2fpackage.json',
  `${'a'.repeat(21)}%2F${'a'.repeat(21)}`,
  `${'a'.repeat(21)}%20${'a'.repeat(21)}`,
];

describe('confirmation links', () => {
  let s: TestService;
  beforeAll(async () => {
    s = await createTestService({ CONFIRM_TOKEN_TTL_HOURS: '1', CONFIRM_RESEND_MINUTES: '0' });
  });
  afterAll(() => s?.close());

  it('an unknown token is a 404 page that offers to subscribe again, or a token_invalid JSON error', async () => {
    const unknown = 'A'.repeat(43);
    for (const method of ['GET', 'POST']) {
      const page = await s.app.request(`/confirm/${unknown}`, { method });
      expect(page.status).toBe(404);
      expect(page.headers.get('content-type')).toMatch(/^text\/html/);
      const html = await page.text();
      expect(html).toContain('This link is not valid');
      expect(html.split('This link is not valid').length).toBe(3); // the title and the heading, not the text again
      expect(html).toContain(`<form method="post" action="${PUBLIC_URL}/subscribe"`);

      const json = await s.app.request(`/confirm/${unknown}`, { method, headers: JSON_CLIENT });
      expect(json.status).toBe(404);
      expect((await errorIn(json)).code).toBe('token_invalid');
    }
  });

  it('a token with one character changed is unknown (tokens are compared exactly)', async () => {
    const token = await subscribeAndGetToken(s, 'exact@example.org');
    const last = token.at(-1) === 'A' ? 'B' : 'A';
    const flipped = token.slice(0, 42) + last;
    const swappedCase = token.replace(/[a-z]/, (c) => c.toUpperCase());
    for (const wrong of [flipped, swappedCase === token ? flipped : swappedCase]) {
      expect((await s.app.request(`/confirm/${wrong}`, { method: 'POST' })).status).toBe(404);
    }
    expect(await subscribersFor(s.database.db, 'exact@example.org')).toMatchObject([{ status: 'pending' }]);
  });

  it('malformed tokens (wrong shape, too long, odd characters, path traversal) get 404', async () => {
    for (const token of malformedTokens) {
      for (const method of ['GET', 'POST']) {
        const res = await s.app.request(`/confirm/${token}`, { method });
        expect(res.status, `${method} /confirm/${token.slice(0, 60)}`).toBe(404);
        expect(await res.text()).not.toMatch(/\n\s+at |node_modules/);
      }
    }
  });

  it('an expired link is a 410 on GET and POST, offers to subscribe again, and confirms nothing', async () => {
    const token = await subscribeAndGetToken(s, 'late@example.org');
    await rows(
      s.database.db,
      sql`update confirmations set sent_at = now() - interval '2 hours', expires_at = now() - interval '1 hour'
          where subscriber_id in (select id from subscribers where email = 'late@example.org')`,
    );
    const before = await readerTables(s.database.db);

    for (const method of ['GET', 'POST']) {
      const page = await s.app.request(`/confirm/${token}`, { method });
      expect(page.status, method).toBe(410);
      const html = await page.text();
      expect(html).toContain('expired');
      expect(html).toContain(`action="${PUBLIC_URL}/subscribe"`);
      const json = await s.app.request(`/confirm/${token}`, { method, headers: JSON_CLIENT });
      expect(json.status).toBe(410);
      expect((await errorIn(json)).code).toBe('token_expired');
    }
    expect(await readerTables(s.database.db)).toEqual(before);
    expect(await subscribersFor(s.database.db, 'late@example.org')).toMatchObject([{ status: 'pending' }]);

    // Subscribing again sends a fresh link, and that one works.
    const fresh = await subscribeAndGetToken(s, 'late@example.org');
    expect((await s.app.request(`/confirm/${fresh}`, { method: 'POST' })).status).toBe(200);
    expect(await subscribersFor(s.database.db, 'late@example.org')).toMatchObject([{ status: 'confirmed' }]);
  });

  it('a used confirmation link does not resubscribe a reader who unsubscribed since (410)', async () => {
    const token = await subscribeAndGetToken(s, 'undo@example.org');
    expect((await s.app.request(`/confirm/${token}`, { method: 'POST' })).status).toBe(200);
    const [row] = await subscribersFor(s.database.db, 'undo@example.org');
    expect((await s.app.request(`/unsubscribe/${row?.unsubscribe_token}`, { method: 'POST' })).status).toBe(
      200,
    );

    const before = await readerTables(s.database.db);
    expect((await s.app.request(`/confirm/${token}`, { method: 'POST' })).status).toBe(410);
    expect((await s.app.request(`/confirm/${token}`)).status).toBe(410);
    expect(await readerTables(s.database.db)).toEqual(before);
    expect(await subscribersFor(s.database.db, 'undo@example.org')).toMatchObject([
      { status: 'unsubscribed' },
    ]);
  });

  it('the raw confirmation token is stored nowhere, only its hash', async () => {
    const token = await subscribeAndGetToken(s, 'hashed@example.org');
    const dump = JSON.stringify(await readerTables(s.database.db));
    expect(dump).not.toContain(token);
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('an unsubscribe token is not a confirmation token, and a confirmation token is not an unsubscribe token', async () => {
    const confirmToken = await subscribeAndGetToken(s, 'crossed@example.org');
    const [row] = await subscribersFor(s.database.db, 'crossed@example.org');
    expect((await s.app.request(`/confirm/${row?.unsubscribe_token}`, { method: 'POST' })).status).toBe(404);
    expect((await s.app.request(`/unsubscribe/${confirmToken}`, { method: 'POST' })).status).toBe(404);
    expect(await subscribersFor(s.database.db, 'crossed@example.org')).toMatchObject([{ status: 'pending' }]);
  });
});

describe('unsubscribe links', () => {
  let s: TestService;
  beforeAll(async () => {
    s = await createTestService();
  });
  afterAll(() => s?.close());

  it('an unknown unsubscribe token is a 404 page with a subscribe form, or token_invalid JSON', async () => {
    const unknown = 'b'.repeat(43);
    for (const method of ['GET', 'POST']) {
      const page = await s.app.request(`/unsubscribe/${unknown}`, { method });
      expect(page.status).toBe(404);
      expect(await page.text()).toContain(`action="${PUBLIC_URL}/subscribe"`);
      const oneClick = await postForm(s, `/unsubscribe/${unknown}`, 'List-Unsubscribe=One-Click');
      expect(oneClick.status).toBe(404);
      const json = await s.app.request(`/unsubscribe/${unknown}`, { method, headers: JSON_CLIENT });
      expect(json.status).toBe(404);
      expect((await errorIn(json)).code).toBe('token_invalid');
    }
  });

  it('malformed unsubscribe tokens get 404', async () => {
    for (const token of malformedTokens) {
      for (const method of ['GET', 'POST']) {
        const res = await s.app.request(`/unsubscribe/${token}`, { method });
        expect(res.status, `${method} /unsubscribe/${token.slice(0, 60)}`).toBe(404);
      }
    }
  });

  it('the links in emails reveal no address and cannot be derived from it', async () => {
    const email = 'Private.Person@example.org';
    const confirmToken = await subscribeAndGetToken(s, email);
    expect((await s.app.request(`/confirm/${confirmToken}`, { method: 'POST' })).status).toBe(200);
    await s.publish({ slug: 'private', title: 'Private', url: 'https://example.org/private' });
    await s.drain();
    const mails = s.smtp.to(email);
    expect(mails).toHaveLength(2);
    const unsubscribeToken = unsubscribeTokenIn(mails[1]?.raw);

    const encodings = [email, email.toLowerCase(), 'private.person', 'Private.Person'].flatMap((v) => [
      v,
      encodeURIComponent(v),
      Buffer.from(v).toString('base64url'),
      Buffer.from(v).toString('base64'),
      Buffer.from(v).toString('hex'),
    ]);
    for (const mail of mails) {
      const links = `${mail.parsed.text}\n${mail.parsed.html}\n${mail.raw}`.match(
        /https:\/\/news\.example\.test\/[^\s"'<>)]*/g,
      );
      expect(links?.length).toBeGreaterThan(0);
      for (const link of links ?? []) {
        expect(link).not.toContain('@');
        expect(link).not.toContain('%40');
        for (const e of encodings) expect(link.toLowerCase()).not.toContain(e.toLowerCase());
      }
    }
    for (const token of [confirmToken, unsubscribeToken]) expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);

    // Neither page behind the links shows the address either.
    for (const path of [`/confirm/${confirmToken}`, `/unsubscribe/${unsubscribeToken}`]) {
      const html = (await (await s.app.request(path)).text()).toLowerCase();
      expect(html).not.toContain('private.person');
    }
  });

  it('each reader has their own unsubscribe token, and using one unsubscribes no one else', async () => {
    const first = await readerWithLetter(s, 'first@example.org', 'for-first');
    const second = unsubscribeTokenIn(
      s.smtp
        .to('private.person@example.org')
        .filter((m) => m.parsed.subject === 'for-first')
        .at(-1)?.raw,
    );
    expect(first).not.toBe(second);
    const res = await postForm(s, `/unsubscribe/${first}`, 'List-Unsubscribe=One-Click');
    expect(res.status).toBe(200);
    expect(await subscribersFor(s.database.db, 'first@example.org')).toMatchObject([
      { status: 'unsubscribed' },
    ]);
    expect(await subscribersFor(s.database.db, 'private.person@example.org')).toMatchObject([
      { status: 'confirmed' },
    ]);
  });

  it('readers who subscribe at the same time (one batch, one draw of random bytes) get tokens of their own', async () => {
    const emails = Array.from({ length: 30 }, (_, i) => `together${i}@example.org`);
    const answers = await Promise.all(emails.map((email) => s.subscribeJson(email)));
    expect(answers.map((a) => a.status)).toEqual(emails.map(() => 202));
    const tokens = await rows<{ token: string }>(
      s.database.db,
      sql`select unsubscribe_token as token from subscribers where email like 'together%'`,
    );
    expect(tokens).toHaveLength(30);
    for (const { token } of tokens) expect(isTokenShape(token), token).toBe(true);
    expect(new Set(tokens.map((t) => t.token)).size).toBe(30);
    // Drawn together, still 256 bits each: no two of many share a token or a byte string.
    const many = newTokens(1000);
    expect(new Set(many).size).toBe(1000);
    for (const token of many) expect(Buffer.from(token, 'base64url')).toHaveLength(32);
  });

  it('the pages with a token in their address send no Referer, cannot be framed and are not cached', async () => {
    const token = await readerWithLetter(s, 'headers@example.org', 'headers');
    for (const res of [
      await s.app.request(`/unsubscribe/${token}`),
      await s.app.request(`/unsubscribe/${token}`, { method: 'POST' }),
    ]) {
      expect(res.status).toBe(200);
      expect(res.headers.get('referrer-policy')).toBe('no-referrer');
      expect(res.headers.get('x-frame-options')).toBe('DENY');
      expect(res.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
      expect(res.headers.get('cache-control')).toBe('no-store');
    }
  });
});

describe('cross-origin requests', () => {
  let s: TestService;
  beforeAll(async () => {
    s = await createTestService({ ALLOWED_ORIGINS: SITE });
  });
  afterAll(() => s?.close());

  const preflight = (origin: string) =>
    s.app.request('/subscribe', {
      method: 'OPTIONS',
      headers: {
        origin,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type',
      },
    });

  it('a preflight from an allowed origin is allowed', async () => {
    const res = await preflight(SITE);
    expect(res.status).toBeLessThan(300);
    expect(res.headers.get('access-control-allow-origin')).toBe(SITE);
    expect(res.headers.get('access-control-allow-methods')).toContain('POST');
    expect(res.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('content-type');
  });

  it('a preflight from any other origin gets no Access-Control-Allow-Origin', async () => {
    for (const origin of [
      'https://evil.example',
      'https://site.example.evil.example',
      'http://site.example',
      'null',
    ]) {
      const res = await preflight(origin);
      expect(res.headers.get('access-control-allow-origin'), origin).toBeNull();
      expect(res.headers.get('access-control-allow-credentials')).toBeNull();
    }
  });

  it('a subscription posted from another origin gets no CORS headers, so its page cannot read the answer', async () => {
    const res = await postJson(
      s,
      '/subscribe',
      { email: 'cors@example.org' },
      { origin: 'https://evil.example' },
    );
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
    expect(res.headers.get('access-control-allow-origin')).not.toBe('*');
  });
});

describe('logs', () => {
  let s: TestService;
  let down: TestDatabase;
  let outbox: string;
  const lines: string[] = [];
  beforeAll(async () => {
    [s, down] = await Promise.all([createTestService({ CONFIRM_RESEND_MINUTES: '0' }), createTestDatabase()]);
    await down.destroy();
    outbox = mkdtempSync(join(tmpdir(), 'oneletter-outbox-'));
  });
  afterAll(async () => {
    await s?.close();
    rmSync(outbox, { recursive: true, force: true });
  });

  it('no log line holds a full email address or a token, whatever happens', async () => {
    const log = createLogger((line) => lines.push(line));
    const renderer = createRenderer(loadTemplates());
    const mailer = createOutboxMailer({ dir: outbox, log: (line) => log.info(line) });
    const dispatcher = createDispatcher({ db: s.database.db, mailer, renderer, config: s.config, log });
    const deps: Deps = { config: s.config, database: s.database, renderer, log };
    const app = createApp(deps);
    const brokenApp = createApp({ ...deps, database: down });
    const drain = async () => {
      while ((await dispatcher.runOnce()) > 0) {}
    };
    const mailTo = async (email: string) => {
      const found = [];
      for (const file of readdirSync(outbox).sort()) {
        const parsed = await simpleParser(readFileSync(join(outbox, file)));
        if (parsed.headers.get('to') && JSON.stringify(parsed.to).includes(email)) found.push(parsed);
      }
      return found;
    };
    const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
      app.request(path, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify(body),
      });

    const email = 'secret.reader@example.org';
    expect((await post('/subscribe', { email, name: 'Secret Name' })).status).toBe(202);
    expect(
      (
        await app.request('/subscribe', {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: `email=${encodeURIComponent(email)}`,
        })
      ).status,
    ).toBe(303);
    expect((await post('/subscribe', { email: 'bot.address@example.org', website: 'x' })).status).toBe(202);
    expect((await post('/subscribe', { email: 'not an address@example.org' })).status).toBe(422);
    await drain();
    const [confirmMail] = await mailTo(email);
    const confirmToken = confirmTokenIn(confirmMail?.text);
    expect((await app.request(`/confirm/${confirmToken}`)).status).toBe(200);
    expect((await app.request(`/confirm/${confirmToken}`, { method: 'POST' })).status).toBe(200);

    expect(
      (
        await post(
          '/api/essays',
          { slug: 'logged', title: 'Logged', url: 'https://example.org/logged' },
          { authorization: `Bearer ${PUBLISHER_TOKEN}` },
        )
      ).status,
    ).toBe(202);
    await drain();
    const letter = (await mailTo(email)).find((m) => m.subject === 'Logged');
    const unsubscribeToken = unsubscribeTokenIn(letter?.text);
    expect((await app.request(`/unsubscribe/${unsubscribeToken}`)).status).toBe(200);
    expect((await app.request(`/unsubscribe/${unsubscribeToken}`, { method: 'POST' })).status).toBe(200);
    expect((await app.request(`/confirm/${'c'.repeat(43)}/extra`)).status).toBe(404);
    expect((await app.request(`/unsubscribe/${unsubscribeToken.slice(1)}`)).status).toBe(404);

    // With the database gone, the failures are logged, still without addresses or tokens.
    const failed = await brokenApp.request('/subscribe', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email }),
    });
    expect(failed.status).toBeGreaterThanOrEqual(500);
    expect(await failed.text()).not.toContain(email);
    await brokenApp.request(`/unsubscribe/${unsubscribeToken}`, { method: 'POST' });
    await brokenApp.request(`/confirm/${confirmToken}`, { method: 'POST' });
    await mailer.close();

    // The outbox (the development mailer, no SMTP_URL) names the link of each email it wrote to disk (a
    // confirmation's, a letter's unsubscribe), so that a newcomer can follow it: the token is in the .eml file
    // beside it anyway. No other line holds one.
    const outboxLinks = lines.filter((line) => line.includes('"link":"'));
    expect(outboxLinks.some((line) => line.includes('/confirm/'))).toBe(true);
    for (const line of outboxLinks) expect(line).toContain('email written to outbox');
    const all = lines.filter((line) => !outboxLinks.includes(line)).join('');
    expect(lines.length).toBeGreaterThan(10);
    expect(all).toContain('"level":"error"');
    expect(all).toContain('/unsubscribe/:token');
    for (const secret of [
      email,
      'bot.address@example.org',
      'not an address@example.org',
      confirmToken,
      unsubscribeToken,
      unsubscribeToken.slice(1),
      'c'.repeat(43),
    ]) {
      expect(all.toLowerCase()).not.toContain(secret.toLowerCase());
    }
    for (const line of lines) expect(() => JSON.parse(line)).not.toThrow();
  });

  it('malformed tokens are refused before the database is asked: with it down they still get 404', async () => {
    const app = createApp({
      config: s.config,
      database: down,
      renderer: createRenderer(loadTemplates()),
      log: createLogger(() => {}),
    });
    for (const token of malformedTokens) {
      for (const path of [`/confirm/${token}`, `/unsubscribe/${token}`]) {
        expect((await app.request(path, { method: 'POST' })).status, path.slice(0, 60)).toBe(404);
      }
    }
  });
});

describe('the public answer does not depend on the address', () => {
  let s: TestService;
  beforeAll(async () => {
    s = await createTestService();
  });
  afterAll(() => s?.close());

  it('a confirmed address and a never-seen one get byte-identical answers, with the same headers', async () => {
    const token = await subscribeAndGetToken(s, 'known@example.org');
    expect((await s.app.request(`/confirm/${token}`, { method: 'POST' })).status).toBe(200);
    const known = await s.subscribeJson('KNOWN@example.org');
    const unknown = await s.subscribeJson('unknown@example.org');
    expect(known.status).toBe(unknown.status);
    expect(headersWithoutDate(known)).toEqual(headersWithoutDate(unknown));
    expect(await known.text()).toBe(await unknown.text());
  });
});
