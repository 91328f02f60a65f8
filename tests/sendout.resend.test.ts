import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rows } from '../src/db/client.js';
import { essayMessageKey } from '../src/mail/messages.js';
import { signIn } from './support/admin.js';
import { runCli } from './support/process.js';
import type { ErrorAnswer, SeededSubscriber } from './support/sendout.js';
import { addresses, answer, progress, seedSubscribers } from './support/sendout.js';
import type { TestService } from './support/service.js';
import { createTestService, listenOnFreePort, PUBLIC_URL, PUBLISHER_TOKEN } from './support/service.js';

/**
 * `unknown` means the mail server may have the letter: the service never sends it again by itself. The
 * publisher may choose to, knowing some of those readers may get the essay twice: through the API, the
 * dashboard or the CLI. The letter is the same message (same Message-ID) and the ledger records the resend.
 */

const essay = (slug: string) => ({
  slug,
  title: `Title of ${slug}`,
  url: `https://example.org/essays/${slug}`,
});

interface LedgerRow {
  email: string;
  status: string;
  attempts: number;
  resends: number;
  resentAt: string | null;
  lastError: string | null;
}

async function ledger(s: TestService, slug: string): Promise<Map<string, LedgerRow>> {
  const found = await rows<LedgerRow>(
    s.database.db,
    sql`select s.email, d.status::text as status, d.attempts::int as attempts, d.resends::int as resends,
               d.resent_at::text as "resentAt", d.last_error as "lastError"
        from deliveries d join essays e on e.id = d.essay_id join subscribers s on s.id = d.subscriber_id
        where e.slug = ${slug}`,
  );
  return new Map(
    found.map((r) => [r.email, { ...r, attempts: Number(r.attempts), resends: Number(r.resends) }]),
  );
}

/** Arrange: the ledger says what a crash after handing the letters to SMTP would have left. */
async function markUnknown(s: TestService, slug: string, emails: string[]): Promise<void> {
  await s.database.db.execute(sql`
    update deliveries d
    set status = 'unknown', last_error = 'the dispatcher stopped while SMTP had the message; not resent'
    from essays e, subscribers s
    where e.id = d.essay_id and s.id = d.subscriber_id and e.slug = ${slug}
      and s.email in (select value from json_array_elements_text(${JSON.stringify(emails)}::json))`);
}

async function setStatus(s: TestService, slug: string, email: string, status: string): Promise<void> {
  await s.database.db.execute(sql`
    update deliveries d set status = ${status}::delivery_status
    from essays e, subscribers s
    where e.id = d.essay_id and s.id = d.subscriber_id and e.slug = ${slug} and s.email = ${email}`);
}

/** The Message-IDs of the letters about `slug` each address received, in order. */
function messageIds(s: TestService, slug: string, email: string): string[] {
  return s.smtp
    .to(email)
    .filter((m) => m.parsed.subject === essay(slug).title)
    .map((m) => m.parsed.messageId ?? '');
}

/** POST …/resend-unknown with `token` as the bearer token (none when null). */
const resendRequest = (s: TestService, slug: string, token: string | null = PUBLISHER_TOKEN) =>
  s.app.request(`/api/essays/${encodeURIComponent(slug)}/resend-unknown`, {
    method: 'POST',
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });

describe('resending the letters whose outcome is unknown, through the API', () => {
  let s: TestService;
  let readers: SeededSubscriber[];
  const slug = 'on-doubt';
  // reader-0000, 0001: unknown, still subscribed; 0002: failed; 0003: skipped; 0004: sent;
  // 0005: unknown, then unsubscribed; 0006: unknown, then erased.
  const email = (i: number) => readers[i]?.email as string;

  beforeAll(async () => {
    s = await createTestService();
    readers = await seedSubscribers(s.database.db, 'confirmed', addresses('reader', 7));
    expect((await s.publish(essay(slug))).status).toBe(202);
    await s.drain();
    expect(s.smtp.received).toHaveLength(7);
    await markUnknown(s, slug, [email(0), email(1), email(5), email(6)]);
    await setStatus(s, slug, email(2), 'failed');
    await setStatus(s, slug, email(3), 'skipped');
    await s.database.db.execute(
      sql`update subscribers set status = 'unsubscribed', unsubscribed_at = now() where email = ${email(5)}`,
    );
    const erased = await s.app.request(`/api/subscribers/${encodeURIComponent(email(6))}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${PUBLISHER_TOKEN}` },
    });
    expect(erased.status).toBe(200);
  });
  afterAll(() => s?.close());

  it('resends nothing by itself: the dispatcher leaves unknown deliveries alone', async () => {
    await s.drain();
    await s.dispatcher.runOnce();
    expect(s.smtp.received).toHaveLength(7);
    const { sendout } = await answer(await progress(s, slug));
    expect(sendout).toMatchObject({ status: 'done', total: 7, sent: 1, failed: 1, skipped: 1, unknown: 4 });
    expect((await ledger(s, slug)).get(email(0))?.status).toBe('unknown');
  });

  it('asks for the publisher token and names the essay', async () => {
    const none = await resendRequest(s, slug, null);
    expect(none.status).toBe(401);
    expect(((await none.json()) as ErrorAnswer).error.code).toBe('unauthorized');
    expect((await resendRequest(s, slug, 'a-wrong-token-of-enough-length')).status).toBe(401);
    const missing = await resendRequest(s, 'no-such-essay');
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as ErrorAnswer).error.code).toBe('not_found');
    expect((await resendRequest(s, '%00bad')).status).toBe(404);
    expect(s.smtp.received).toHaveLength(7);
    expect((await ledger(s, slug)).get(email(0))?.status).toBe('unknown');
  });

  it('on request, queues the unknown deliveries of readers still subscribed, and the ledger records it', async () => {
    const before = await ledger(s, slug);
    const res = await resendRequest(s, slug);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { resent: number; sendout: Record<string, unknown> };
    expect(body).toEqual({
      resent: 2,
      sendout: { status: 'sending', total: 7, pending: 2, sent: 1, failed: 1, skipped: 1, unknown: 2 },
    });

    const after = await ledger(s, slug);
    for (const i of [0, 1]) {
      expect(after.get(email(i))).toMatchObject({ status: 'pending', resends: 1, lastError: null });
      expect(after.get(email(i))?.resentAt).not.toBeNull();
    }
    // The other states, and the unknown delivery of a reader who left since, are as they were.
    for (const i of [2, 3, 4, 5]) expect(after.get(email(i))).toEqual(before.get(email(i)));
    expect(after.get(email(5))).toMatchObject({ status: 'unknown', resends: 0, resentAt: null });
  });

  it('sends each of them once more, as the same message (same Message-ID)', async () => {
    await s.drain();
    expect(s.smtp.received).toHaveLength(9);
    for (const i of [0, 1]) {
      const ids = messageIds(s, slug, email(i));
      expect(ids).toHaveLength(2);
      expect(ids[1]).toBe(ids[0]);
      expect(ids[0]).toBe(`<${essayMessageKey(slug, readers[i]?.id as number)}@example.test>`);
    }
    for (const i of [2, 3, 4, 5, 6]) expect(messageIds(s, slug, email(i))).toHaveLength(1);

    const after = await ledger(s, slug);
    expect(after.get(email(0))).toMatchObject({ status: 'sent', resends: 1 });
    const { sendout } = await answer(await progress(s, slug));
    expect(sendout).toEqual({
      status: 'done',
      total: 7,
      pending: 0,
      sent: 3,
      failed: 1,
      skipped: 1,
      unknown: 2,
    });
  });

  it('asked again with nothing to resend, changes nothing and says so', async () => {
    const before = await ledger(s, slug);
    const res = await resendRequest(s, slug);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { resent: number }).resent).toBe(0);
    await s.drain();
    expect(s.smtp.received).toHaveLength(9);
    expect(await ledger(s, slug)).toEqual(before);
  });

  it('is described in the OpenAPI document', async () => {
    const doc = (await (await s.app.request('/openapi.json')).json()) as {
      paths: Record<string, { post?: { responses: Record<string, unknown> } }>;
    };
    const op = doc.paths['/api/essays/{slug}/resend-unknown']?.post;
    // 413 (a body over BODY_LIMIT_BYTES), 429 (too many wrong tokens) and 503 (no database) are answered too.
    expect(Object.keys(op?.responses ?? {}).sort()).toEqual(['200', '401', '404', '413', '429', '503']);
  });
});

describe('resending the letters whose outcome is unknown, from the dashboard', () => {
  let s: TestService;
  let readers: SeededSubscriber[];
  const slug = 'on-the-dashboard';
  const page = `/admin/sendouts/${slug}`;
  const BUTTON = /Resend the (\d+) letters? whose outcome is unknown/;

  beforeAll(async () => {
    s = await createTestService();
    readers = await seedSubscribers(s.database.db, 'confirmed', addresses('reader', 4));
    expect((await s.publish(essay(slug))).status).toBe(202);
    await s.drain();
  });
  afterAll(() => s?.close());

  it('offers no resend while no delivery is unknown', async () => {
    const admin = await signIn(s);
    const html = await (await admin.get(page)).text();
    expect(html).not.toMatch(BUTTON);
    expect(html).not.toContain('resend-unknown');
  });

  it('offers it, with a plain warning, once some are unknown', async () => {
    await markUnknown(s, slug, [readers[0]?.email as string, readers[1]?.email as string]);
    const admin = await signIn(s);
    const html = await (await admin.get(page)).text();
    expect(html.match(BUTTON)?.[0]).toBe('Resend the 2 letters whose outcome is unknown');
    expect(html).toContain('some of those readers may get the essay twice');
    expect(html).toContain(`action="/admin/sendouts/${slug}/resend-unknown"`);
  });

  it('refuses a resend without the session’s form token or from another origin', async () => {
    const admin = await signIn(s);
    const forged = await admin.post(`${page}/resend-unknown`, { csrf: 'not-the-token' });
    expect(forged.status).toBe(403);
    const elsewhere = await s.app.request(`${page}/resend-unknown`, {
      method: 'POST',
      headers: {
        cookie: admin.cookies.header(),
        origin: 'https://attacker.example',
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams({ csrf: admin.csrf }).toString(),
    });
    expect(elsewhere.status).toBe(403);
    const anonymous = await s.app.request(`${page}/resend-unknown`, { method: 'POST' });
    expect(anonymous.status).toBe(401);
    const [counted] = await rows<{ n: number }>(
      s.database.db,
      sql`select count(*)::int as n from deliveries where status = 'unknown' and resends = 0`,
    );
    expect(Number(counted?.n)).toBe(2);
  });

  it('resends on the button, then says what it did', async () => {
    const admin = await signIn(s);
    const res = await admin.post(`${page}/resend-unknown`, {});
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe(`${page}?resent=2`);
    const after = await (await admin.get(res.headers.get('location') as string)).text();
    expect(after).toContain('2 letters whose outcome was unknown are being sent again.');
    expect(after).not.toMatch(BUTTON);

    await s.drain();
    expect(s.smtp.received).toHaveLength(6);
    for (const reader of readers.slice(0, 2)) {
      const ids = messageIds(s, slug, reader.email);
      expect(ids).toHaveLength(2);
      expect(ids[1]).toBe(ids[0]);
    }
    const done = await (await admin.get(page)).text();
    expect(done).toContain('Resent on your request so far: 2 letters');
  });

  it('pressed again with nothing unknown, resends nothing', async () => {
    const admin = await signIn(s);
    const res = await admin.post(`${page}/resend-unknown`, {});
    expect(res.headers.get('location')).toBe(`${page}?resent=0`);
    expect(await (await admin.get(`${page}?resent=0`)).text()).toContain('nothing was resent');
    await s.drain();
    expect(s.smtp.received).toHaveLength(6);
  });
});

describe('resending the letters whose outcome is unknown, from the CLI', () => {
  let s: TestService;
  let server: Awaited<ReturnType<typeof listenOnFreePort>> | undefined;
  let api: string;
  let readers: SeededSubscriber[];
  const slug = 'on-the-command-line';

  beforeAll(async () => {
    s = await createTestService({ DISPATCH_POLL_MS: '50' });
    readers = await seedSubscribers(s.database.db, 'confirmed', addresses('reader', 3));
    expect((await s.publish(essay(slug))).status).toBe(202);
    await s.drain();
    await markUnknown(s, slug, [readers[2]?.email as string]);
    server = await listenOnFreePort(s);
    api = server.url;
    s.dispatcher.start();
  });
  afterAll(async () => {
    await server?.close();
    await s?.close();
  });

  const cli = (args: string[], token = PUBLISHER_TOKEN) =>
    runCli(['resend-unknown', ...args, '--api', api], { ...process.env, PUBLIC_URL, PUBLISHER_TOKEN: token });

  it('resends them through the API, waits for the send-out, and says what it did; again, nothing', async () => {
    const first = await cli([slug]);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout).toContain(`Resending 1 letter of "${slug}" whose outcome was unknown`);
    expect(first.stdout).toContain('Send-out done: 3 sent, 0 failed, 0 skipped, 0 unknown');
    const ids = messageIds(s, slug, readers[2]?.email as string);
    expect(ids).toHaveLength(2);
    expect(ids[1]).toBe(ids[0]);

    const again = await cli([slug]);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('nothing was resent');
    expect(s.smtp.received).toHaveLength(4);
  });

  it('says so for an essay that does not exist or a wrong token', async () => {
    const missing = await cli(['no-such-essay']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('404');
    const wrong = await cli([slug], 'a-wrong-token-of-enough-length');
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain('401');
  });
});
