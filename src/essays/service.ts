import { sql } from 'drizzle-orm';
import { z } from 'zod';
import type { Db } from '../db/client.js';
import { affected, rows } from '../db/client.js';
import { announceWork } from '../dispatch/wake.js';

/** What a slug looks like: checked on input and before a lookup asks the database. */
export const SLUG_SHAPE = /^[A-Za-z0-9][A-Za-z0-9._~-]*$/;

/**
 * Text without control characters (Unicode's Cc: U+0000–U+001F, U+007F–U+009F) other than tab and line
 * breaks (NUL can't even be stored). Written as ranges, without flags, so that the OpenAPI document's
 * `pattern` is this very expression and means the same to any ECMA-262 engine.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: the control characters are what it refuses.
const NO_CONTROLS = /^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$/;
/** No spaces and no control characters, for an address. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: the control characters are what it refuses.
const NO_SPACES_OR_CONTROLS = /^[^\s\u0000-\u001F\u007F-\u009F]*$/;

export const essayInput = z.object({
  slug: z
    .string({ error: 'slug is required: a short stable name for the essay, like "on-walking".' })
    .trim()
    .min(1, { error: 'slug is required: a short stable name for the essay, like "on-walking".' })
    .max(200, { error: 'slug is too long: at most 200 characters.' })
    .regex(SLUG_SHAPE, {
      error: 'slug may hold letters, digits, ".", "_", "~" and "-", and starts with a letter or digit.',
    })
    // Compared without case: a tool that changes "On-Walking" to "on-walking" must not send a second letter.
    .transform((v) => v.toLowerCase()),
  title: z
    .string({ error: 'title is required.' })
    .trim()
    .min(1, { error: 'title is required.' })
    .max(300, { error: 'title is too long: at most 300 characters.' })
    .regex(NO_CONTROLS, { error: 'title may not contain control characters.' }),
  url: z
    .url({ protocol: /^https?$/, error: 'url must be the essay’s http:// or https:// address.' })
    .max(2000, { error: 'url is too long: at most 2000 characters.' })
    .regex(NO_SPACES_OR_CONTROLS, { error: 'url may not contain spaces or control characters.' }),
  summary: z
    .string({ error: 'summary must be text.' })
    .trim()
    .max(5000, { error: 'summary is too long: at most 5000 characters.' })
    .regex(NO_CONTROLS, { error: 'summary may not contain control characters.' })
    .nullish()
    .transform((v) => v || undefined),
});

/** A validated essay (the output of essayInput). */
export interface EssayInput {
  slug: string;
  title: string;
  url: string;
  summary?: string;
}

export interface EssayView {
  id: number;
  slug: string;
  title: string;
  url: string;
  summary: string | null;
  publishedAt: string;
}

/** Where a send-out stands. `pending` counts deliveries not finished yet (waiting, claimed or in SMTP's hands). */
export interface SendoutView {
  status: 'sending' | 'done';
  total: number;
  pending: number;
  sent: number;
  failed: number;
  skipped: number;
  unknown: number;
}

/**
 * Records an essay and fans its send-out into the delivery ledger: one row per subscriber confirmed now,
 * in one INSERT … SELECT. The same slug again (even at the same moment) changes nothing.
 */
export async function publish(db: Db, input: EssayInput): Promise<{ essay: EssayView; created: boolean }> {
  const created = await db.transaction(async (t) => {
    const tx = t as unknown as Db;
    const [essay] = await rows<{ id: number }>(
      tx,
      sql`insert into essays (slug, title, url, summary)
          values (${input.slug}, ${input.title}, ${input.url}, ${input.summary ?? null})
          on conflict (slug) do nothing
          returning id`,
    );
    if (!essay) return false;
    const total = await affected(
      tx,
      sql`insert into deliveries (essay_id, subscriber_id)
          select ${essay.id}, id from subscribers where status = 'confirmed'`,
    );
    await tx.execute(sql`update essays set total = ${total} where id = ${essay.id}`);
    return true;
  });
  // Fresh statistics after a large fan-out: without them the planner takes the ledger for a small table and
  // sorts every pending row to claim a batch (about a second per claim at 1M), instead of walking the index.
  if (created) {
    await db.execute(sql`analyze deliveries`);
    // Dispatchers in other processes start now rather than at their next poll (after the analyze: a claim
    // before it would sort the whole ledger). Not announced, it still goes out a poll later.
    await announceWork(db).catch(() => {});
  }
  const essay = await findEssay(db, input.slug);
  if (!essay) throw new Error(`essay ${input.slug} vanished after publishing`);
  return { essay, created };
}

export async function findEssay(db: Db, slug: string): Promise<EssayView | undefined> {
  const [essay] = await rows<EssayView & { publishedAt: Date | string }>(
    db,
    sql`select id, slug, title, url, summary, published_at as "publishedAt"
        from essays where slug = ${slug.toLowerCase()}`,
  );
  if (!essay) return undefined;
  return { ...essay, publishedAt: new Date(essay.publishedAt).toISOString() };
}

/**
 * The essay's deliveries by state, with those of erased subscribers (kept as anonymous counts). Read from the
 * ledger's running counts (delivery_counts, kept by a trigger on deliveries): a few rows whatever the size of
 * the send-out, and exact in the caller's snapshot.
 */
export async function sendoutProgress(db: Db, essayId: number): Promise<SendoutView> {
  const counts = await rows<{ status: string; n: number }>(
    db,
    sql`select status, sum(n)::int as n from (
          select status, count as n from delivery_counts where essay_id = ${essayId} and second = -1
          union all
          select status, count as n from erased_deliveries where essay_id = ${essayId}
        ) c group by status`,
  );
  const by = Object.fromEntries(counts.map((r) => [r.status, Number(r.n)])) as Record<string, number>;
  const pending = (by.pending ?? 0) + (by.claimed ?? 0) + (by.sending ?? 0);
  const sent = by.sent ?? 0;
  const failed = by.failed ?? 0;
  const skipped = by.skipped ?? 0;
  const unknown = by.unknown ?? 0;
  return {
    status: pending > 0 ? 'sending' : 'done',
    total: pending + sent + failed + skipped + unknown,
    pending,
    sent,
    failed,
    skipped,
    unknown,
  };
}

/** A send-out's `unknown` deliveries as the resend choice sees them. */
export interface ResendView {
  /** Unknown deliveries whose subscriber is still confirmed: what a resend would send again. */
  resendable: number;
  /** Deliveries the publisher has had sent again, whatever became of them since. */
  resent: number;
}

/**
 * What a resend of the essay's `unknown` deliveries would send, and how many were resent before. Each unknown
 * delivery's subscriber is looked up by key (LATERAL … LIMIT 1 keeps it a lookup: joined, the planner would
 * rather read the whole list), through indexes of the unknown and resent rows alone.
 */
export async function resendView(db: Db, essayId: number): Promise<ResendView> {
  const [counts] = await rows<{ resendable: number; resent: number }>(
    db,
    sql`select (select count(*) from deliveries d
                cross join lateral (select status from subscribers s where s.id = d.subscriber_id limit 1) s
                where d.essay_id = ${essayId} and d.status = 'unknown' and s.status = 'confirmed'
               )::int as resendable,
               (select count(*) from deliveries where essay_id = ${essayId} and resends > 0)::int as resent`,
  );
  return { resendable: Number(counts?.resendable ?? 0), resent: Number(counts?.resent ?? 0) };
}

/**
 * Sends the essay's `unknown` deliveries again, on the publisher's word only (some of those readers may
 * get the essay twice): each goes back to pending for the dispatchers, which build the same letter with the
 * same Message-ID (essayMessageKey: essay and subscriber), and the ledger counts the resend. Subscribers no longer confirmed, and erased ones, are left as they are.
 * Returns how many were queued: none when nothing is unknown.
 */
export async function resendUnknown(db: Db, essayId: number): Promise<number> {
  const resent = await affected(
    db,
    sql`update deliveries d
        set status = 'pending', not_before = null, claimed_by = null, lease_until = null, last_error = null,
            resends = d.resends + 1, resent_at = now(), updated_at = now()
        from subscribers s
        where d.essay_id = ${essayId} and d.status = 'unknown'
          and s.id = d.subscriber_id and s.status = 'confirmed'`,
  );
  // As after publishing: dispatchers in other processes start now rather than at their next poll.
  if (resent > 0) await announceWork(db).catch(() => {});
  return resent;
}
