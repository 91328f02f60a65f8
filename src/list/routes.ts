import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { bodyLimit } from 'hono/body-limit';
import type { AppEnv, Deps } from '../deps.js';
import { AppError } from '../http/errors.js';
import {
  apiError,
  json,
  publisherErrors,
  publisherSecurity,
  tooLarge,
  unavailable,
} from '../http/openapi.js';
import { publisherAuth } from '../http/publisher-auth.js';
import {
  erasedView,
  importReport,
  listQuery,
  statsQuery,
  statsView,
  subscriberDetail,
  subscriberFilters,
  subscriberPage,
  subscriberRef,
} from './schemas.js';
import { subscriberDetail as detail, eraseSubscriber, listSubscribers } from './service.js';
import { stats } from './stats.js';
import { exportCsv, importCsv } from './transfer.js';

/** The publisher's tools for the list: browse, look one up, export, import, erase, and the figures. */

export const IMPORT_PATH = '/api/subscribers/import';

const security = publisherSecurity;
/** What every subscriber route may answer besides its own answers. */
const errors = { ...publisherErrors, ...unavailable(apiError) };
const badParameter = { 422: apiError('A parameter is not valid (`invalid_input`); the message names it.') };

const listRoute = createRoute({
  method: 'get',
  path: '/api/subscribers',
  tags: ['Subscribers'],
  summary: 'List subscribers, newest first',
  description:
    'Filters combine. Pages by cursor: pass `nextCursor` as `cursor` until it is null. Each page costs the same however deep.',
  security,
  request: { query: listQuery },
  responses: {
    200: json(subscriberPage, 'One page of subscribers.'),
    400: apiError('The cursor is not one this service gave out (`invalid_cursor`).'),
    ...errors,
    ...badParameter,
  },
});

const exportRoute = createRoute({
  method: 'get',
  path: '/api/subscribers/export',
  tags: ['Subscribers'],
  summary: 'Export subscribers as CSV',
  description:
    'Streamed: columns email, name, status, created_at, confirmed_at, unsubscribed_at, bounced_at. Takes the list’s filters.',
  security,
  request: { query: subscriberFilters },
  responses: {
    200: {
      description: 'The CSV, with a header row.',
      content: { 'text/csv': { schema: z.string() } },
    },
    ...errors,
    ...badParameter,
  },
});

const importRoute = createRoute({
  method: 'post',
  path: IMPORT_PATH,
  tags: ['Subscribers'],
  summary: 'Import subscribers from CSV',
  description:
    'A header row names the columns: `email` (required), `name` (or first and last name), `status` (pending, ' +
    'confirmed, unsubscribed, bounced), `confirmed_at`, `created_at`; names match without case, spaces or ' +
    'underscores. Exports of Mailchimp, Substack, Ghost, Buttondown and listmonk are read as they are, their ' +
    'statuses mapped to ours. An address is stored as confirmed only when the file says so (a subscribed status, ' +
    'or a confirmed_at); one the file says unsubscribed, blocklisted or cleaned is stored as such and never mailed; ' +
    'other new addresses are sent a confirmation email. Addresses already on the list are left as they are (a ' +
    'pending one the file says confirmed is confirmed): importing the same file twice changes nothing. Refused rows ' +
    'are reported by line number; the others are imported. The counts add up to the rows read, and the columns ' +
    'the import did not use are named.',
  security,
  request: {
    body: {
      required: true,
      content: {
        'text/csv': { schema: z.string().openapi({ example: 'email,name\nreader@example.org,Ada\n' }) },
      },
    },
  },
  responses: {
    200: json(importReport, 'What the import did, and the bad rows.'),
    ...errors,
    413: apiError('The file is larger than IMPORT_LIMIT_BYTES (`payload_too_large`).'),
    415: apiError('Not sent as text/csv (`unsupported_media_type`).'),
    422: apiError('The file has no header row naming an email column (`invalid_csv`).'),
  },
});

const detailRoute = createRoute({
  method: 'get',
  path: '/api/subscribers/{subscriber}',
  tags: ['Subscribers'],
  summary: 'One subscriber, the consent on record, their history, and the essays sent to them',
  security,
  request: { params: subscriberRef },
  responses: {
    200: json(subscriberDetail, 'The subscriber, with `consent`: each request and its confirmation.'),
    ...errors,
    404: apiError('No subscriber has that id or address.'),
    ...badParameter,
  },
});

const eraseRoute = createRoute({
  method: 'delete',
  path: '/api/subscribers/{subscriber}',
  tags: ['Subscribers'],
  summary: 'Erase a subscriber (right to be forgotten)',
  description:
    'Their address, name and consent records are removed from every table. Their deliveries become anonymous per-essay counts, ' +
    'so send-out figures do not change; deliveries not sent yet are skipped.',
  security,
  request: { params: subscriberRef },
  responses: {
    200: json(erasedView, 'Erased.'),
    ...errors,
    404: apiError('No subscriber has that id or address.'),
    ...badParameter,
    ...tooLarge(apiError),
  },
});

const statsRoute = createRoute({
  method: 'get',
  path: '/api/stats',
  tags: ['Stats'],
  summary: 'Subscribers by status, growth per day, recent send-outs',
  security,
  request: { query: statsQuery },
  responses: { 200: json(statsView, 'The figures.'), ...errors, ...badParameter },
});

const CSV_TYPES = /^(text\/csv|application\/csv|text\/plain)\b/i;

export function subscriberRoutes(deps: Deps): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>();
  const db = deps.database.db;
  const auth = publisherAuth(deps);
  app.use('/api/subscribers', auth);
  app.use('/api/subscribers/*', auth);
  app.use('/api/stats', auth);

  app.openapi(listRoute, async (c) => c.json(await listSubscribers(db, c.req.valid('query')), 200));

  app.openapi(exportRoute, (c) => {
    const day = new Date().toISOString().slice(0, 10);
    return c.body(exportCsv(db, c.req.valid('query')), 200, {
      'Content-Type': 'text/csv; charset=utf-8',
      'Content-Disposition': `attachment; filename="subscribers-${day}.csv"`,
      'Cache-Control': 'no-store',
    });
  });

  app.openapi(
    {
      ...importRoute,
      middleware: [
        bodyLimit({
          maxSize: deps.config.importLimitBytes,
          onError: () => {
            throw new AppError(
              'payload_too_large',
              `The file is larger than ${deps.config.importLimitBytes} bytes (IMPORT_LIMIT_BYTES). Split it, or raise the limit.`,
            );
          },
        }),
      ],
    },
    async (c) => {
      if (!CSV_TYPES.test(c.req.header('content-type') ?? '')) {
        throw new AppError('unsupported_media_type', 'Send the file as CSV with Content-Type: text/csv.');
      }
      const body = c.req.raw.body;
      if (!body)
        throw new AppError('invalid_csv', 'The file is empty. Send a CSV whose first row names its columns.');
      const report = await importCsv(db, body);
      deps.log.info({
        msg: 'subscribers imported',
        rows: report.rows,
        created: report.created,
        queued: report.queued,
        updated: report.updated,
        unchanged: report.unchanged,
        invalid: report.invalid,
      });
      if (report.queued > 0) deps.kick?.();
      return c.json(report, 200);
    },
  );

  app.openapi(detailRoute, async (c) => c.json(await detail(db, c.req.valid('param').subscriber), 200));

  app.openapi(eraseRoute, async (c) => {
    const { deliveries } = await eraseSubscriber(db, c.req.valid('param').subscriber);
    deps.log.info({ msg: 'subscriber erased', deliveries });
    return c.json({ erased: true as const, deliveries }, 200);
  });

  app.openapi(statsRoute, async (c) => c.json(await stats(db, c.req.valid('query')), 200));

  return app;
}
