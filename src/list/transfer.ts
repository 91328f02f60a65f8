import { sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { rows } from '../db/client.js';
import type { SubscriberStatus } from '../db/schema.js';
import { AppError } from '../http/errors.js';
import type { ConsentRow } from '../reader/consent.js';
import { consentColumns } from '../reader/consent.js';
import { emailSchema, subscribeInput } from '../reader/service.js';
import { newToken } from '../tokens.js';
import { csvRecords } from './csv.js';
import type { ImportColumns, ImportField } from './import-formats.js';
import { booleanFrom, dateFrom, isDeletionRequest, readColumns, statusFrom } from './import-formats.js';
import type { ImportReport, SubscriberFilters } from './schemas.js';
import { importSummary } from './schemas.js';
import { filterConditions, subscriberColumns } from './service.js';

/** Moving the list to and from other services: CSV export (streamed) and import (set-based, batched). */

export const EXPORT_COLUMNS = [
  'email',
  'name',
  'status',
  'created_at',
  'confirmed_at',
  'unsubscribed_at',
  'bounced_at',
  // Consent on record (issue 26): the confirmed request's, else the latest one's.
  'consent_requested_at',
  'consent_page',
  'consent_user_agent',
  'consent_ip',
  'consent_text_version',
  'consent_confirm_page',
  'consent_confirm_user_agent',
  'consent_confirm_ip',
  'consent_confirm_text_version',
] as const;

const EXPORT_BATCH = 5000;
const IMPORT_BATCH = 2000;
const MAX_REPORTED_ERRORS = 1000;

/** One CSV field (RFC 4180): quoted when it holds a quote, comma or line break. */
function field(value: string | null): string {
  if (value === null) return '';
  return /[",\r\n]/.test(value) || value !== value.trim() ? `"${value.replace(/"/g, '""')}"` : value;
}

/** A name a spreadsheet would run as a formula gets a leading apostrophe (the import takes it off again). */
function guardFormula(value: string | null): string | null {
  return value && /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
}

const iso = (v: Date | string | null) => (v === null ? '' : new Date(v).toISOString());

/**
 * The list as CSV, read in keyset batches of 5,000 by id as the client reads the response: memory stays the same
 * at 1,000,000 rows as at 10, and a slow client slows the reads instead of filling memory.
 */
export function exportCsv(db: Db, filters: SubscriberFilters): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  const conditions = filterConditions(filters);
  let after = 0;
  let headerSent = false;
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        if (!headerSent) {
          headerSent = true;
          controller.enqueue(encoder.encode(`${EXPORT_COLUMNS.join(',')}\r\n`));
          return;
        }
        const batch = await rows<
          ConsentRow & {
            id: number;
            email: string;
            name: string | null;
            status: string;
            createdAt: Date | string;
            confirmedAt: Date | string | null;
            unsubscribedAt: Date | string | null;
            bouncedAt: Date | string | null;
          }
        >(
          db,
          sql`select s.*, ${consentColumns('k')}
              from (select ${subscriberColumns} from subscribers
                    where ${sql.join([...conditions, sql`id > ${after}`], sql` and `)}
                    order by id limit ${EXPORT_BATCH}) s
              left join lateral (
                select * from confirmations c where c.subscriber_id = s.id
                order by c.confirmed_at is null, c.requested_at desc, c.id desc limit 1
              ) k on true
              order by s.id`,
        );
        if (batch.length === 0) {
          controller.close();
          return;
        }
        let text = '';
        for (const r of batch) {
          text += `${[
            field(r.email),
            field(guardFormula(r.name)),
            r.status,
            iso(r.createdAt),
            iso(r.confirmedAt),
            iso(r.unsubscribedAt),
            iso(r.bouncedAt),
            iso(r.requestedAt),
            field(guardFormula(r.page)),
            field(guardFormula(r.userAgent)),
            field(r.ip),
            field(guardFormula(r.textVersion)),
            field(guardFormula(r.confirmPage)),
            field(guardFormula(r.confirmUserAgent)),
            field(r.confirmIp),
            field(guardFormula(r.confirmTextVersion)),
          ].join(',')}\r\n`;
        }
        after = Number(batch[batch.length - 1]?.id);
        controller.enqueue(encoder.encode(text));
      },
    },
    { highWaterMark: 1 },
  );
}

interface ImportRow {
  email: string;
  name: string | null;
  status: SubscriberStatus;
  confirmed_at: string | null;
  created_at: string | null;
  token: string;
}

const nameSchema = subscribeInput.shape.name;

/** A row's status from what its file says, most telling first. */
function statusOf(
  given: SubscriberStatus | undefined,
  says: {
    unsubscribedAt: string | null;
    bouncedAt: string | null;
    optedOut: boolean;
    optedIn: boolean;
    confirmedAt: string | null;
  },
): SubscriberStatus {
  // "Gets no email" is never overruled, not even by a status column.
  if (says.optedOut) return given === 'bounced' ? 'bounced' : 'unsubscribed';
  if (given) return given;
  if (says.unsubscribedAt) return 'unsubscribed';
  if (says.bouncedAt) return 'bounced';
  if (says.optedIn || says.confirmedAt) return 'confirmed';
  return 'pending';
}

/**
 * Reads one data row; throws an Error whose message says what is wrong with it. Consent is what the file says
 * (`statusOf`): a reader it says gets no email (subscribed_to_emails false, email_disabled true) is unsubscribed
 * whatever else it says; then a status (ours or the service's), an unsubscribe or clean time, a subscribed flag or
 * a confirmation time; with none of them the address is pending and asked to confirm.
 */
function readRow(record: string[], columns: ImportColumns): ImportRow {
  const cell = (f: ImportField) => {
    for (const i of columns[f] ?? []) {
      const value = (record[i] ?? '').trim();
      if (value !== '') return value;
    }
    return '';
  };
  const email = emailSchema.safeParse(cell('email'));
  if (!email.success) throw new Error(`email: ${email.error.issues[0]?.message ?? 'invalid'}`);
  if (isDeletionRequest(email.data)) {
    throw new Error('email: a Substack deletion request (the reader asked to be deleted), not an address.');
  }
  const fullName = cell('name') || [cell('first_name'), cell('last_name')].filter(Boolean).join(' ');
  const name = nameSchema.safeParse(fullName.replace(/^'(?=[=+\-@\t\r])/, ''));
  if (!name.success) throw new Error(`name: ${name.error.issues[0]?.message ?? 'invalid'}`);
  const given = statusFrom(cell('status'));
  const confirmedAt = dateFrom(cell('confirmed_at'), 'confirmed_at');
  const createdAt = dateFrom(cell('created_at'), 'created_at');
  const unsubscribedAt = dateFrom(cell('unsubscribed_at'), 'unsubscribed_at');
  const bouncedAt = dateFrom(cell('bounced_at'), 'bounced_at');
  const subscribed = booleanFrom(cell('subscribed'), 'subscribed_to_emails');
  const disabled = booleanFrom(cell('email_disabled'), 'email_disabled');
  const optedOut = subscribed === false || disabled === true;
  const optedIn = subscribed === true || disabled === false;
  const status = statusOf(given, { unsubscribedAt, bouncedAt, optedOut, optedIn, confirmedAt });
  return {
    email: email.data,
    name: name.data ?? null,
    status,
    confirmed_at: confirmedAt,
    created_at: createdAt,
    token: newToken(),
  };
}

interface StoredCounts {
  created: number;
  confirmed: number;
  queued: number;
  unsubscribed: number;
  bounced: number;
  updated: number;
}

/**
 * Stores one batch in one statement. New addresses are inserted (confirmed only when the file says so; pending
 * ones get a confirmation request queued, which the dispatcher mails); a pending address already on the list
 * that the file says confirmed is confirmed; every other address already on the list is left as it is (an
 * unsubscribe here is never undone by a file). Importing the same rows again therefore changes nothing.
 */
async function storeBatch(db: Db, batch: ImportRow[]): Promise<StoredCounts> {
  const [counts] = await rows<StoredCounts>(
    db,
    sql`
      with v as (
        select distinct on (lower(email)) *
        from json_to_recordset(${JSON.stringify(batch)}::json) as v(email text, name text,
          status subscriber_status, confirmed_at timestamptz, created_at timestamptz, token text)
        order by lower(email)
      ), inserted as (
        insert into subscribers (email, name, status, unsubscribe_token, created_at, updated_at,
                                 confirmed_at, unsubscribed_at, bounced_at)
        select email, name, status, token, coalesce(created_at, now()), now(),
               case when status = 'confirmed' then coalesce(confirmed_at, now()) else confirmed_at end,
               case when status = 'unsubscribed' then now() end,
               case when status = 'bounced' then now() end
        from v
        on conflict ((lower(email))) do nothing
        returning id, status
      ), upgraded as (
        update subscribers s
        set status = 'confirmed', confirmed_at = coalesce(v.confirmed_at, now()), name = coalesce(s.name, v.name),
            updated_at = now()
        from v
        where lower(s.email) = lower(v.email) and v.status = 'confirmed' and s.status = 'pending'
        returning s.id
      ), queued as (
        insert into confirmations (subscriber_id) select id from inserted where status = 'pending' returning 1
      ), events as (
        insert into subscriber_events (subscriber_id, kind)
        select id, 'imported'::subscriber_event_kind from inserted
        union all select id, 'confirmed'::subscriber_event_kind from upgraded
      )
      select (select count(*) from inserted)::int as created,
             (select count(*) from inserted where status = 'confirmed')::int as confirmed,
             (select count(*) from queued)::int as queued,
             (select count(*) from inserted where status = 'unsubscribed')::int as unsubscribed,
             (select count(*) from inserted where status = 'bounced')::int as bounced,
             (select count(*) from upgraded)::int as updated`,
  );
  return {
    created: Number(counts?.created ?? 0),
    confirmed: Number(counts?.confirmed ?? 0),
    queued: Number(counts?.queued ?? 0),
    unsubscribed: Number(counts?.unsubscribed ?? 0),
    bounced: Number(counts?.bounced ?? 0),
    updated: Number(counts?.updated ?? 0),
  };
}

/**
 * Imports a CSV (a header row naming at least `email`), streamed: rows are checked one by one and stored in
 * batches of 2,000 as they arrive. A bad row is reported by its line number and the rest go on; a row the
 * CSV grammar can't read (an unclosed quote, say) is reported the same way. Every row read ends in one count:
 * new (confirmed, queued, unsubscribed or bounced), updated, unchanged or invalid.
 */
export async function importCsv(
  db: Db,
  body: ReadableStream<Uint8Array>,
  onProgress?: (report: ImportReport) => void,
): Promise<ImportReport> {
  const report: ImportReport = {
    rows: 0,
    created: 0,
    confirmed: 0,
    queued: 0,
    unsubscribed: 0,
    bounced: 0,
    updated: 0,
    unchanged: 0,
    invalid: 0,
    errors: [],
    ignoredColumns: [],
    summary: '',
  };
  const fail = (line: number, message: string) => {
    report.invalid++;
    if (report.errors.length < MAX_REPORTED_ERRORS) report.errors.push({ line, message });
  };
  let columns: ImportColumns | undefined;
  let batch: ImportRow[] = [];
  const flush = async () => {
    if (batch.length === 0) return;
    const stored = await storeBatch(db, batch);
    report.created += stored.created;
    report.confirmed += stored.confirmed;
    report.queued += stored.queued;
    report.unsubscribed += stored.unsubscribed;
    report.bounced += stored.bounced;
    report.updated += stored.updated;
    // Already on the list, or an address the file repeats (the batch keeps one row per address).
    report.unchanged += batch.length - stored.created - stored.updated;
    batch = [];
    onProgress?.(report);
  };
  for await (const record of csvRecords(body as unknown as AsyncIterable<Uint8Array>)) {
    if (!columns) {
      if ('error' in record) {
        throw new AppError(
          'invalid_csv',
          `The header row (line ${record.line}) is not valid CSV: ${record.error}.`,
        );
      }
      const header = readColumns(record.fields);
      if (!header.columns.email) {
        throw new AppError(
          'invalid_csv',
          'The first row must name the columns, one of them "email" (optional: name or first/last name, status, ' +
            'confirmed_at, created_at; exports of Mailchimp, Substack, Ghost, Buttondown and listmonk are read as they are).',
        );
      }
      columns = header.columns;
      report.ignoredColumns = header.ignored;
      continue;
    }
    report.rows++;
    if ('error' in record) {
      fail(record.line, `not valid CSV: ${record.error}`);
      continue;
    }
    if (record.fields.every((v) => v.trim() === '')) {
      report.rows--;
      continue;
    }
    try {
      batch.push(readRow(record.fields, columns));
    } catch (error) {
      fail(record.line, (error as Error).message);
    }
    if (batch.length >= IMPORT_BATCH) await flush();
  }
  if (!columns) {
    throw new AppError('invalid_csv', 'The file is empty. Send a CSV whose first row names its columns.');
  }
  await flush();
  report.summary = importSummary(report);
  return report;
}
