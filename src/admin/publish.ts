import { createHash } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { Context, Hono } from 'hono';
import type { Db } from '../db/client.js';
import { rows } from '../db/client.js';
import type { Deps } from '../deps.js';
import type { EssayInput } from '../essays/service.js';
import { essayInput, findEssay, publish } from '../essays/service.js';
import { readFields } from '../http/body.js';
import { AppError } from '../http/errors.js';
import { addressKey, hitLimits } from '../http/rate-limit.js';
import { subscriberCounts } from '../list/stats.js';
import { describeError } from '../log.js';
import { essayLetters } from '../mail/messages.js';
import { emailSchema } from '../reader/service.js';
import type { AdminEnv } from './page.js';
import { adminPage, PREVIEW_FRAME_PATH } from './page.js';

/** Stands in for a subscriber's unsubscribe token in the preview: a link that leads nowhere. */
const PREVIEW_TOKEN = 'preview-preview-preview-preview-preview-pre';

const FIELDS = ['slug', 'title', 'url', 'summary'] as const;

function rawFields(fields: Record<string, string>): Record<(typeof FIELDS)[number], string> {
  return {
    slug: fields.slug ?? '',
    title: fields.title ?? '',
    url: fields.url ?? '',
    summary: fields.summary ?? '',
  };
}

/** The essay from a form, or the first problem with it in words. */
function parseEssay(fields: Record<string, string>): { essay?: EssayInput; error?: string } {
  const parsed = essayInput.safeParse({ ...rawFields(fields), summary: fields.summary || undefined });
  if (parsed.success) return { essay: parsed.data };
  return { error: parsed.error.issues[0]?.message ?? 'Check the fields and try again.' };
}

/** The first confirmed subscriber, whose letter the preview shows (a placeholder on an empty list). */
async function sampleRecipient(db: Db) {
  const [first] = await rows<{ id: number; email: string; name: string | null }>(
    db,
    sql`select id, email, name from subscribers where status = 'confirmed' order by id limit 1`,
  );
  return {
    id: Number(first?.id ?? 0),
    email: first?.email ?? 'reader@example.com',
    name: first?.name ?? null,
    unsubscribeToken: PREVIEW_TOKEN,
  };
}

/** The letter exactly as the dispatcher builds it (essayLetters), for the sample subscriber. */
async function letterFor(deps: Deps, essay: EssayInput) {
  const recipient = await sampleRecipient(deps.database.db);
  const letters = essayLetters(deps.config, deps.renderer, {
    id: 0,
    ...essay,
    summary: essay.summary ?? null,
  });
  return letters.email(recipient);
}

/** Tests of a letter a dashboard session may send per hour, and one address may be sent per hour. */
export const TEST_SENDS_PER_HOUR = 10;

/** A session's key for rate limits: a hash of its CSRF token (never the token itself). */
function sessionKey(csrf: string | undefined): string {
  return createHash('sha256')
    .update(`admin-session\n${csrf ?? ''}`)
    .digest('base64url')
    .slice(0, 22);
}

/**
 * Sends a test of the letter to one address through the configured mailer: the letter essayLetters() builds for
 * the send-out, marked as a test (see LetterOptions), with an inert unsubscribe link. Nothing is written to the
 * ledger: no essay, no delivery. The answer says, in words, what happened.
 */
async function sendTest(
  deps: Deps,
  essay: EssayInput,
  to: string,
): Promise<{ sent: boolean; message: string }> {
  const mailer = deps.mailer;
  if (!mailer)
    return { sent: false, message: 'Test letters are not available here: no mailer is configured.' };
  const [known] = await rows<{ name: string | null }>(
    deps.database.db,
    sql`select name from subscribers where lower(email) = lower(${to})`,
  );
  const letters = essayLetters(
    deps.config,
    deps.renderer,
    { id: 0, ...essay, summary: essay.summary ?? null },
    { test: true },
  );
  const recipient = { id: 0, email: to, name: known?.name ?? null, unsubscribeToken: PREVIEW_TOKEN };
  try {
    const letter = mailer.structuredOnly ? await letters.email(recipient) : await letters.to(recipient);
    const outcome = await mailer.send(letter);
    if (outcome.status === 'sent') {
      return {
        sent: true,
        message: `Sent a test to ${to}: look for “${letter.subject}” there.`,
      };
    }
    return {
      sent: false,
      message: `The mail server did not take the test (${outcome.error}). Nothing was sent.`,
    };
  } catch (error) {
    return { sent: false, message: `The test could not be sent: ${describeError(error).error}.` };
  }
}

/** The publish form, its preview (HTML and text, as sent) and the confirmed publish. */
export function publishRoutes(app: Hono<AdminEnv>, deps: Deps): void {
  const db = deps.database.db;

  const form = (c: Context<AdminEnv>, fields: Record<string, string>, error?: string) =>
    adminPage(
      c,
      'publish',
      { title: 'Publish an essay', fields: rawFields(fields), error },
      error ? 422 : 200,
    );

  app.get('/admin/publish', (c) => form(c, c.req.query()));

  const preview = async (
    c: Context<AdminEnv>,
    essay: EssayInput,
    test: { to?: string; sent?: boolean; message?: string } = {},
    status: 200 | 422 | 429 = 200,
  ) => {
    const letter = await letterFor(deps, essay);
    const frame = new URLSearchParams({
      slug: essay.slug,
      title: essay.title,
      url: essay.url,
      summary: essay.summary ?? '',
    });
    return adminPage(
      c,
      'preview',
      {
        title: 'Preview and send',
        essay,
        letter,
        frame_url: `${PREVIEW_FRAME_PATH}?${frame}`,
        confirmed: (await subscriberCounts(db)).confirmed,
        already: await findEssay(db, essay.slug),
        can_test: Boolean(deps.mailer),
        test_limit: TEST_SENDS_PER_HOUR,
        test,
      },
      status,
    );
  };

  app.post('/admin/publish/preview', async (c) => {
    const fields = await readFields(c);
    const { essay, error } = parseEssay(fields);
    if (!essay) return form(c, fields, error);
    return preview(c, essay);
  });

  app.post('/admin/publish/test', async (c) => {
    const fields = await readFields(c);
    const { essay, error } = parseEssay(fields);
    if (!essay) return form(c, fields, error);
    const to = emailSchema.safeParse(fields.to ?? '');
    if (!to.success) {
      const message = to.error.issues[0]?.message ?? 'Enter an email address.';
      return preview(c, essay, { to: fields.to, sent: false, message }, 422);
    }
    if (!deps.mailer) {
      return preview(
        c,
        essay,
        { to: to.data, sent: false, message: 'Test letters are not available here.' },
        422,
      );
    }
    const verdict = await hitLimits(db, [
      {
        key: `admin-test-session:${sessionKey(c.get('csrf'))}`,
        max: TEST_SENDS_PER_HOUR,
        windowSeconds: 3600,
      },
      { key: `admin-test-address:${addressKey(to.data)}`, max: TEST_SENDS_PER_HOUR, windowSeconds: 3600 },
    ]);
    if (!verdict.allowed) {
      c.header('Retry-After', String(verdict.retryAfter));
      const minutes = Math.ceil(verdict.retryAfter / 60);
      const message = `${TEST_SENDS_PER_HOUR} tests an hour at most: try again in ${minutes} minute${minutes === 1 ? '' : 's'}.`;
      return preview(c, essay, { to: to.data, sent: false, message }, 429);
    }
    const result = await sendTest(deps, essay, to.data);
    deps.log.info({ msg: 'test letter sent from the dashboard', slug: essay.slug, sent: result.sent });
    return preview(c, essay, { to: to.data, ...result }, result.sent ? 200 : 422);
  });

  // The letter's HTML on its own, for the preview's sandboxed frame (with a CSP of its own: see routes.ts).
  app.get(PREVIEW_FRAME_PATH, async (c) => {
    const { essay, error } = parseEssay(c.req.query());
    if (!essay) throw new AppError('invalid_input', error ?? 'Check the fields and try again.');
    const letter = await letterFor(deps, essay);
    return c.html(letter.html);
  });

  app.post('/admin/publish', async (c) => {
    const fields = await readFields(c);
    const { essay, error } = parseEssay(fields);
    if (!essay) return form(c, fields, error);
    const { essay: published, created } = await publish(db, essay);
    deps.log.info({ msg: 'essay published from the dashboard', slug: published.slug, created });
    if (created) deps.kick?.();
    const path = `/admin/sendouts/${encodeURIComponent(published.slug)}`;
    return c.redirect(created ? path : `${path}?existing=1`, 303);
  });
}
