import { sql } from 'drizzle-orm';
import type { Hono } from 'hono';
import type { Db } from '../db/client.js';
import { rows } from '../db/client.js';
import type { Deps } from '../deps.js';
import { findEssay, resendUnknown, resendView, SLUG_SHAPE, sendoutProgress } from '../essays/service.js';
import { AppError } from '../http/errors.js';
import type { SendoutPoint } from './charts.js';
import { duration, sendoutChart } from './charts.js';
import { percentDone } from './overview.js';
import type { AdminEnv } from './page.js';
import { adminPage } from './page.js';

const BUCKETS = 40;
const FAILURES_SHOWN = 200;

/**
 * A send-out's states over time. The ledger keeps no history: each delivery's updated_at is when it last
 * changed, so a finished delivery (sent, skipped, failed, unknown) finished then. The finished ones are
 * counted per time bucket since publishing and summed up; what is not finished by a bucket's end was pending
 * then. They are read from the ledger's running counts (delivery_counts: finished deliveries by the second
 * of their last change, kept by a trigger), not from the ledger: a row per second and status, however many
 * letters went out in it. Deliveries of erased subscribers have no time and are left out.
 */
export async function sendoutTimeline(db: Db, essay: { id: number }, total: number): Promise<SendoutPoint[]> {
  // Seconds after publishing (to the second), in buckets of a 40th of the time from publishing to the last
  // finished delivery.
  const counted = await rows<{ seconds: number; bucket: number; b: number; status: string; n: number }>(
    db,
    sql`with finished as (
          select greatest(0, c.second - floor(extract(epoch from e.published_at))::bigint) as second, c.status,
                 sum(c.count) as n
          from delivery_counts c join essays e on e.id = c.essay_id
          where c.essay_id = ${essay.id} and c.second >= 0 group by 1, 2 having sum(c.count) <> 0
        ), span as (
          select greatest(1, max(second)) as seconds,
                 greatest(1, ceil(greatest(1, max(second)) / ${BUCKETS}::float8))::int as bucket
          from finished
        )
        select span.seconds, span.bucket, ceil(second::float8 / span.bucket)::int as b, status::text as status,
               sum(n)::int as n
        from finished, span group by span.seconds, span.bucket, 3, 4`,
  );
  const seconds = Number(counted[0]?.seconds ?? 1);
  const bucket = Number(counted[0]?.bucket ?? 1);
  const last = Math.ceil(seconds / bucket);
  const points: SendoutPoint[] = [];
  const running = { sent: 0, skipped: 0, failed: 0, unknown: 0 };
  for (let b = 0; b <= last; b++) {
    for (const r of counted) {
      if (Number(r.b) === b) running[r.status as keyof typeof running] += Number(r.n);
    }
    const finished = running.sent + running.skipped + running.failed + running.unknown;
    points.push({ at: b * bucket, ...running, pending: Math.max(0, total - finished) });
  }
  return points;
}

interface Failure {
  subscriberId: number;
  email: string;
  status: 'failed' | 'unknown';
  attempts: number;
  resends: number;
  reason: string | null;
  at: string | null;
}

async function failures(db: Db, essayId: number): Promise<Failure[]> {
  const found = await rows<Failure & { at: Date | string | null }>(
    db,
    sql`select d.subscriber_id as "subscriberId", s.email, d.status::text as status, d.attempts, d.resends,
               d.last_error as reason, d.updated_at as at
        from deliveries d join subscribers s on s.id = d.subscriber_id
        where d.essay_id = ${essayId} and d.status in ('failed', 'unknown')
        order by d.updated_at desc nulls last, d.subscriber_id
        limit ${FAILURES_SHOWN}`,
  );
  return found.map((f) => ({ ...f, at: f.at ? new Date(f.at).toISOString() : null }));
}

async function essayOr404(db: Db, slug: string) {
  const essay = SLUG_SHAPE.test(slug) ? await findEssay(db, slug) : undefined;
  if (!essay) {
    throw new AppError('not_found', 'No essay has that slug. The overview lists the latest send-outs.');
  }
  return essay;
}

/** `?resent=N` after a resend: how many letters it queued again, for the page to say. */
function resentNow(query: string | undefined): { count: number } | undefined {
  return query !== undefined && /^\d{1,9}$/.test(query) ? { count: Number(query) } : undefined;
}

/** A send-out's page, its progress as JSON for the page's script, and the publisher's resend of unknowns. */
export function sendoutRoutes(app: Hono<AdminEnv>, deps: Deps): void {
  const db = deps.database.db;

  app.get('/admin/sendouts/:slug/progress', async (c) => {
    const essay = await essayOr404(db, c.req.param('slug'));
    const sendout = await sendoutProgress(db, essay.id);
    return c.json({
      slug: essay.slug,
      ...sendout,
      done: sendout.total - sendout.pending,
      percent: percentDone(sendout),
    });
  });

  app.get('/admin/sendouts/:slug', async (c) => {
    const essay = await essayOr404(db, c.req.param('slug'));
    // Every figure of the page from one snapshot of the ledger, so that they agree with each other while
    // the send-out runs (the page's script fetches the page again and shows it whole).
    const seen = await db.transaction(
      async (t) => {
        const sendout = await sendoutProgress(t, essay.id);
        return {
          sendout,
          timeline: await sendoutTimeline(t, essay, sendout.total),
          resend: await resendView(t, essay.id),
          failures: await failures(t, essay.id),
        };
      },
      { isolationLevel: 'repeatable read', accessMode: 'read only' },
    );
    const { sendout, timeline, resend } = seen;
    return adminPage(c, 'sendout', {
      title: essay.title,
      essay,
      sendout: { ...sendout, done: sendout.total - sendout.pending },
      percent: percentDone(sendout),
      sending: sendout.status === 'sending',
      chart: sendoutChart(timeline, sendout.total),
      timeline: timeline
        .filter((_p, i) => i === timeline.length - 1 || i % Math.ceil(timeline.length / 10) === 0)
        .map((p) => ({ ...p, after: duration(p.at) })),
      failures: seen.failures,
      failures_limit: FAILURES_SHOWN,
      existing: c.req.query('existing') === '1',
      resend: { ...resend, left: sendout.unknown - resend.resendable },
      resent_now: resentNow(c.req.query('resent')),
    });
  });

  // Only when the publisher presses the button (the session's CSRF token and origin are checked for every
  // dashboard form in routes.ts): the service never resends on its own.
  app.post('/admin/sendouts/:slug/resend-unknown', async (c) => {
    const essay = await essayOr404(db, c.req.param('slug'));
    const resent = await resendUnknown(db, essay.id);
    deps.log.info({ msg: 'unknown deliveries resent from the dashboard', slug: essay.slug, resent });
    if (resent > 0) deps.kick?.();
    return c.redirect(`/admin/sendouts/${encodeURIComponent(essay.slug)}?resent=${resent}`, 303);
  });
}
