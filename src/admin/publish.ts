import { sql } from 'drizzle-orm';
import type { Context, Hono } from 'hono';
import type { Db } from '../db/client.js';
import { rows } from '../db/client.js';
import type { Deps } from '../deps.js';
import type { EssayInput } from '../essays/service.js';
import { essayInput, findEssay, publish } from '../essays/service.js';
import { readFields } from '../http/body.js';
import { AppError } from '../http/errors.js';
import { essayLetters } from '../mail/messages.js';
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

async function confirmedCount(db: Db): Promise<number> {
  const [row] = await rows<{ n: number }>(
    db,
    sql`select count(*)::int as n from subscribers where status = 'confirmed'`,
  );
  return Number(row?.n ?? 0);
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

  app.post('/admin/publish/preview', async (c) => {
    const fields = await readFields(c);
    const { essay, error } = parseEssay(fields);
    if (!essay) return form(c, fields, error);
    const letter = await letterFor(deps, essay);
    const frame = new URLSearchParams({
      slug: essay.slug,
      title: essay.title,
      url: essay.url,
      summary: essay.summary ?? '',
    });
    return adminPage(c, 'preview', {
      title: 'Preview and send',
      essay,
      letter,
      frame_url: `${PREVIEW_FRAME_PATH}?${frame}`,
      confirmed: await confirmedCount(db),
      already: await findEssay(db, essay.slug),
    });
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
