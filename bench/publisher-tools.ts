/**
 * The publisher tools at N subscribers, on a fresh PostgreSQL database, through the app in memory
 * (`createApp(deps).request(...)` with the publisher token), each against the bare SQL it stands on:
 * - import of N new rows as one CSV body, against raw `INSERT … SELECT FROM json_to_recordset` of the same
 *   rows in batches of the same size (2,000);
 * - export of all N as CSV, streamed, with this process's RSS growth while it runs, against a raw postgres.js
 *   cursor read of the same rows;
 * - list pages (first, middle by cursor, `q` contains-filter, `status` filter): median and p99, against the
 *   same SQL run raw.
 */
import { sql } from 'drizzle-orm';
import postgres from 'postgres';
import { createApp } from '../src/app.js';
import { parseConfig } from '../src/config.js';
import { rows } from '../src/db/client.js';
import { MIGRATIONS_FOLDER } from '../src/db/open.js';
import { openPostgres } from '../src/db/postgres.js';
import type { Deps } from '../src/deps.js';
import type { ImportReport } from '../src/list/schemas.js';
import { encodeCursor } from '../src/list/service.js';
import { silentLogger } from '../src/log.js';
import { createRenderer } from '../src/mail/render.js';
import { loadTemplates } from '../src/mail/templates-fs.js';
import { newToken } from '../src/tokens.js';
import { createServerDatabase, dropServerDatabase } from '../tests/support/db.js';
import type { Timing } from './support.js';
import { repeat } from './support.js';

const TOKEN = 'bench-publisher-token-0123456789';
const auth = { authorization: `Bearer ${TOKEN}` };
/** As src/list/transfer.ts stores them. */
const IMPORT_BATCH = 2000;
const PAGE = 50;

export interface ListFigure {
  page: string;
  service: Timing;
  raw: Timing;
  rows: number;
}

export interface PublisherToolsResult {
  n: number;
  /** Rows imported (N, or fewer when --import-max caps it). */
  importRows: number;
  importSeconds: number;
  rawImportSeconds: number;
  exportRows: number;
  exportBytes: number;
  exportSeconds: number;
  rawExportSeconds: number;
  /** This process's RSS before the export, and its highest sample during it (every 20 ms). */
  exportRssStartMiB: number;
  exportRssPeakMiB: number;
  list: ListFigure[];
  correct: boolean;
}

export interface PublisherToolsOptions {
  /** Requests per list page kind (each run for the service and raw). */
  listRuns: number;
  /** At most this many rows are imported (the list and export still use N). */
  importMax: number;
  log: (line: string) => void;
}

const mib = () => process.memoryUsage().rss / 2 ** 20;

export async function measurePublisherTools(
  n: number,
  options: PublisherToolsOptions,
): Promise<PublisherToolsResult> {
  const { log } = options;
  const url = await createServerDatabase();
  const database = await openPostgres(url, { poolSize: 4, migrationsFolder: MIGRATIONS_FOLDER });
  const raw = postgres(url, { max: 2, onnotice: () => {} });
  const { db } = database;
  try {
    const config = parseConfig({
      PUBLIC_URL: 'https://news.example.org',
      PUBLISHER_TOKEN: TOKEN,
      MAIL_FROM: 'Essays <essays@example.org>',
      IMPORT_LIMIT_BYTES: String(2 ** 31 - 1),
    });
    const deps: Deps = { config, database, renderer: createRenderer(loadTemplates()), log: silentLogger };
    const app = createApp(deps);

    // (1) Import: N new rows, as another service's export would have them (confirmed there).
    const importRows = Math.min(n, options.importMax);
    log(`n=${n}: import of ${importRows.toLocaleString('en-US')} rows`);
    const lines = ['email,name,status'];
    for (let i = 1; i <= importRows; i++) lines.push(`reader${i}@example.org,Reader ${i},confirmed`);
    const csv = `${lines.join('\n')}\n`;
    lines.length = 0;
    let t = performance.now();
    const res = await app.request('/api/subscribers/import', {
      method: 'POST',
      headers: { ...auth, 'content-type': 'text/csv' },
      body: csv,
    });
    const report = (await res.json()) as ImportReport;
    const importSeconds = (performance.now() - t) / 1000;
    let correct = res.status === 200 && report.created === importRows && report.invalid === 0;
    await db.execute(sql`truncate subscribers cascade`);
    await db.execute(sql`checkpoint`);

    log(`n=${n}: raw json_to_recordset import`);
    t = performance.now();
    for (let from = 1; from <= importRows; from += IMPORT_BATCH) {
      const batch = [];
      for (let i = from; i < Math.min(from + IMPORT_BATCH, importRows + 1); i++) {
        batch.push({ email: `reader${i}@example.org`, name: `Reader ${i}`, token: newToken() });
      }
      await raw`
        insert into subscribers (email, name, status, unsubscribe_token, confirmed_at)
        select email, name, 'confirmed', token, now()
        from json_to_recordset(${JSON.stringify(batch)}::text::json) as v(email text, name text, token text)`;
    }
    const rawImportSeconds = (performance.now() - t) / 1000;
    await db.execute(sql`truncate subscribers cascade`);

    // The list for export and pages: one INSERT … SELECT, a second apart, mixed statuses.
    log(`n=${n}: seeding`);
    await db.execute(sql`
      insert into subscribers (email, name, status, unsubscribe_token, created_at, confirmed_at, unsubscribed_at)
      select 'reader' || i || '@example.org', 'Reader ' || i,
             (case when i % 20 = 0 then 'unsubscribed' when i % 10 = 1 then 'pending' else 'confirmed' end)::subscriber_status,
             md5(i::text) || substr(md5(random()::text), 1, 11),
             now() - make_interval(secs => ${n} - i),
             case when i % 10 <> 1 then now() end,
             case when i % 20 = 0 then now() end
      from generate_series(1, ${n}) as i`);
    await db.execute(sql`vacuum analyze subscribers`);
    await db.execute(sql`checkpoint`);

    // (2) Export, streamed; this process's memory sampled while it runs.
    log(`n=${n}: export`);
    globalThis.gc?.();
    const exportRssStartMiB = mib();
    let exportRssPeakMiB = exportRssStartMiB;
    const sampler = setInterval(() => {
      exportRssPeakMiB = Math.max(exportRssPeakMiB, mib());
    }, 20);
    t = performance.now();
    const exported = await app.request('/api/subscribers/export', { headers: auth });
    let exportBytes = 0;
    let newlines = 0;
    const reader = (exported.body as ReadableStream<Uint8Array>).getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      exportBytes += value.byteLength;
      for (let i = 0; i < value.length; i++) if (value[i] === 10) newlines++;
    }
    const exportSeconds = (performance.now() - t) / 1000;
    clearInterval(sampler);
    exportRssPeakMiB = Math.max(exportRssPeakMiB, mib());
    const exportRows = newlines - 1;
    correct &&= exportRows === n;

    log(`n=${n}: raw cursor read`);
    t = performance.now();
    let rawRows = 0;
    await raw`select email, name, status, created_at from subscribers`.cursor(5000, (batch) => {
      rawRows += batch.length;
    });
    const rawExportSeconds = (performance.now() - t) / 1000;
    correct &&= rawRows === n;

    // (3) List pages. The middle page's cursor is built as the service builds it.
    log(`n=${n}: list pages`);
    const [middle] = await rows<{ id: number; at: string }>(
      db,
      sql`select id, to_char(created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as at
          from subscribers order by created_at desc, id desc offset ${Math.floor(n / 2)} limit 1`,
    );
    if (!middle) throw new Error('no middle row');
    const cursor = encodeCursor({ at: middle.at, id: Number(middle.id) });
    const cols = `id, email, name, status::text as status, created_at as "createdAt",
      confirmed_at as "confirmedAt", unsubscribed_at as "unsubscribedAt", bounced_at as "bouncedAt",
      to_char(created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as "cursorAt"`;
    const tail = `order by created_at desc, id desc limit ${PAGE + 1}`;
    const q = '777';
    const kinds: { page: string; path: string; sql: string; params: (string | number)[] }[] = [
      { page: 'first', path: '', sql: `select ${cols} from subscribers ${tail}`, params: [] },
      {
        page: 'middle (cursor)',
        path: `&cursor=${cursor}`,
        sql: `select ${cols} from subscribers where (created_at, id) < ($1::timestamptz, $2::int) ${tail}`,
        params: [middle.at, Number(middle.id)],
      },
      {
        page: `q=${q}`,
        path: `&q=${q}`,
        sql: `select ${cols} from subscribers where lower(email) like $1 ${tail}`,
        params: [`%${q}%`],
      },
      {
        page: 'status=unsubscribed',
        path: '&status=unsubscribed',
        sql: `select ${cols} from subscribers where status = $1::subscriber_status ${tail}`,
        params: ['unsubscribed'],
      },
    ];
    const list: ListFigure[] = [];
    for (const k of kinds) {
      let count = 0;
      const service = await repeat(options.listRuns, async () => {
        const r = await app.request(`/api/subscribers?limit=${PAGE}${k.path}`, { headers: auth });
        if (r.status !== 200) throw new Error(`list ${k.page}: ${r.status} ${await r.text()}`);
        count = ((await r.json()) as { subscribers: unknown[] }).subscribers.length;
      });
      const rawTiming = await repeat(options.listRuns, () => raw.unsafe(k.sql, k.params));
      list.push({ page: k.page, service, raw: rawTiming, rows: count });
      correct &&= count > 0;
    }

    return {
      n,
      importRows,
      importSeconds,
      rawImportSeconds,
      exportRows,
      exportBytes,
      exportSeconds,
      rawExportSeconds,
      exportRssStartMiB,
      exportRssPeakMiB,
      list,
      correct,
    };
  } finally {
    await raw.end({ timeout: 5 });
    await database.close();
    await dropServerDatabase(url);
  }
}
