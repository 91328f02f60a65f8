import type { Context, Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { SubscriberStatus } from '../db/schema.js';
import { subscriberStatus } from '../db/schema.js';
import type { Deps } from '../deps.js';
import { readFields } from '../http/body.js';
import { AppError } from '../http/errors.js';
import { statusSchema } from '../list/schemas.js';
import { eraseSubscriber, findSubscriber, listSubscribers, subscriberDetail } from '../list/service.js';
import { exportCsv, importCsv } from '../list/transfer.js';
import type { AdminEnv } from './page.js';
import { adminPage } from './page.js';

const PER_PAGE = 50;

/** Where the dashboard's import form posts: its body is a file, read under IMPORT_LIMIT_BYTES (see app.ts). */
export const ADMIN_IMPORT_PATH = '/admin/subscribers/import';

/** The list's filters as the page's query holds them: an unknown status or an empty search is no filter. */
function filtersFrom(c: Context<AdminEnv>): { q: string; status: SubscriberStatus | '' } {
  const q = (c.req.query('q') ?? '').trim().slice(0, 254);
  const status = statusSchema.safeParse(c.req.query('status'));
  return { q, status: status.success ? status.data : '' };
}

/** A query string of the filters (and a cursor), leaving out what is empty. */
function listQuery(fields: Record<string, string | number | undefined>): string {
  const kept = Object.entries(fields).filter(([, v]) => v !== undefined && v !== '');
  const query = new URLSearchParams(kept.map(([k, v]): [string, string] => [k, String(v)]));
  return query.size ? `?${query}` : '';
}

/**
 * What an import did, as label/value rows in the order the report gives them: the page shows whatever the
 * import reports (counts, a summary, ignored columns) without naming its fields, so a report that grows
 * shows whole. The refused rows are listed on their own.
 */
function reportRows(report: Record<string, unknown>): { label: string; value: string }[] {
  const out: { label: string; value: string }[] = [];
  for (const [key, value] of Object.entries(report)) {
    if (key === 'errors' || key === 'summary') continue;
    const label = key.replace(/([a-z])([A-Z])/g, '$1 $2').toLowerCase();
    if (typeof value === 'number') out.push({ label, value: String(value) });
    else if (Array.isArray(value) && value.every((v) => typeof v === 'string'))
      out.push({ label, value: value.length ? value.join(', ') : 'none' });
    else if (typeof value === 'string') out.push({ label, value });
  }
  return out;
}

/**
 * The list, a page at a time (keyset paging as the API's, filtered by status and address), one subscriber's
 * history and essays, their erasure behind a confirmation, and the list's import and export as CSV.
 */
export function subscriberPages(app: Hono<AdminEnv>, deps: Deps): void {
  const db = deps.database.db;

  app.get('/admin/subscribers', async (c) => {
    const { q, status } = filtersFrom(c);
    const cursor = c.req.query('cursor') || undefined;
    // How many rows came before this page: for "51–100" only; the cursor alone says where the page starts.
    const before = cursor ? Math.max(0, Number.parseInt(c.req.query('from') ?? '0', 10) || 0) : 0;
    const found = await listSubscribers(db, {
      q: q || undefined,
      status: status || undefined,
      cursor,
      limit: PER_PAGE,
    });
    const shown = found.subscribers.length;
    return adminPage(c, 'subscribers', {
      title: 'Subscribers',
      q,
      status,
      statuses: subscriberStatus.enumValues,
      filtered: q !== '' || status !== '',
      subscribers: found.subscribers,
      first: before + 1,
      last: before + shown,
      next_url: found.nextCursor
        ? `/admin/subscribers${listQuery({ q, status, cursor: found.nextCursor, from: before + shown })}`
        : undefined,
      first_url: cursor ? `/admin/subscribers${listQuery({ q, status })}` : undefined,
      export_url: `/admin/subscribers/export${listQuery({ q, status })}`,
      erased: c.req.query('erased') === '1',
    });
  });

  // The list (or the filtered part of it) as CSV, streamed as the API's export is.
  app.get('/admin/subscribers/export', (c) => {
    const { q, status } = filtersFrom(c);
    const day = new Date().toISOString().slice(0, 10);
    return c.body(exportCsv(db, { q: q || undefined, status: status || undefined }), 200, {
      'Content-Type': 'text/csv; charset=utf-8',
      'Content-Disposition': `attachment; filename="subscribers-${day}.csv"`,
    });
  });

  app.get(ADMIN_IMPORT_PATH, (c) =>
    adminPage(c, 'import', { title: 'Import subscribers', limit_mb: importLimitMb(deps) }),
  );

  app.post(ADMIN_IMPORT_PATH, async (c) => {
    const form = await c.req.formData();
    const file = form.get('file');
    if (!file || typeof file === 'string' || file.size === 0) {
      return adminPage(
        c,
        'import',
        {
          title: 'Import subscribers',
          limit_mb: importLimitMb(deps),
          error: 'Choose a CSV file to import.',
        },
        422,
      );
    }
    // The API's import, as the API route calls it: the same checks, the same report.
    const report = await importCsv(db, file.stream());
    deps.log.info({
      msg: 'subscribers imported from the dashboard',
      rows: report.rows,
      created: report.created,
      queued: report.queued,
      invalid: report.invalid,
    });
    if (report.queued > 0) deps.kick?.();
    const summary = (report as { summary?: unknown }).summary;
    return adminPage(c, 'import', {
      title: 'Import subscribers',
      limit_mb: importLimitMb(deps),
      report: {
        rows: reportRows(report as unknown as Record<string, unknown>),
        summary: typeof summary === 'string' ? summary : undefined,
        errors: report.errors,
        invalid: report.invalid,
      },
    });
  });

  app.get('/admin/subscribers/:ref', async (c) => {
    const detail = await subscriberDetail(db, c.req.param('ref'));
    return adminPage(c, 'subscriber', { title: detail.subscriber.email, ...detail });
  });

  // Erasure asks first: the page says what goes, and only its own form (with `confirm`) erases.
  app.get('/admin/subscribers/:ref/erase', async (c) => {
    const subscriber = await findSubscriber(db, c.req.param('ref'));
    return adminPage(c, 'erase', { title: `Erase ${subscriber.email}?`, subscriber });
  });

  app.post('/admin/subscribers/:ref/erase', async (c) => {
    const fields = await readFields(c);
    const subscriber = await findSubscriber(db, c.req.param('ref'));
    if (fields.confirm !== 'erase') {
      return adminPage(c, 'erase', { title: `Erase ${subscriber.email}?`, subscriber }, 422);
    }
    const { deliveries } = await eraseSubscriber(db, String(subscriber.id));
    deps.log.info({ msg: 'subscriber erased from the dashboard', deliveries });
    return c.redirect('/admin/subscribers?erased=1', 303);
  });
}

function importLimitMb(deps: Deps): number {
  return Math.floor(deps.config.importLimitBytes / (1024 * 1024));
}

/**
 * The import form's size limit, checked as the body arrives (before the session check reads the form):
 * the app-wide form limit does not apply to this one path.
 */
export function importBodyLimit(deps: Deps) {
  return bodyLimit({
    maxSize: deps.config.importLimitBytes,
    onError: () => {
      throw new AppError(
        'payload_too_large',
        `The file is larger than ${deps.config.importLimitBytes} bytes (IMPORT_LIMIT_BYTES). Split it, or raise the limit.`,
      );
    },
  });
}
