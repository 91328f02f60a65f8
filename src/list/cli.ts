import { createReadStream, createWriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import { parseArgs } from 'node:util';
import type { Api } from '../entry/api-client.js';
import { API_OPTION, CommandError, extraWords, publisherApi } from '../entry/api-client.js';
import { describeError } from '../log.js';
import type { ImportReport, StatsView } from './schemas.js';

const SUBSCRIBERS_USAGE = `Usage: npm run cli -- subscribers <export|import|erase> … [--api URL]

The list, through the running service's API (npm run cli -- subscribers <command> --help for each):
  export [--out FILE] …    the list as CSV
  import FILE              subscribers from a CSV, this service's or another's
  erase <email-or-id>      one subscriber forgotten

Example:
  npm run cli -- subscribers export --out subscribers.csv`;

const EXPORT_USAGE = `Usage: npm run cli -- subscribers export [--out FILE] [--status S] [--since DATE] [--q TEXT] [--api URL]

Writes the list as CSV (email, name, status, dates and consent) to FILE or standard output, showing progress
on standard error. Without a filter, every subscriber whatever their status.

Options:
  --out FILE      write to FILE instead of standard output
  --status S      only subscribers with this status: pending, confirmed, unsubscribed or bounced
  --since DATE    only subscribers created at or after DATE (UTC): 2026-01-01 or 2026-01-01T12:00:00Z
  --q TEXT        only addresses that contain TEXT (case-insensitive)
${API_OPTION}

Example:
  npm run cli -- subscribers export --status confirmed --out confirmed.csv`;

const IMPORT_USAGE = `Usage: npm run cli -- subscribers import FILE [--api URL]

Reads a CSV with an "email" column (optional: name or first/last name, status, confirmed_at, created_at), or
another service's export as it is (Mailchimp, Substack, Ghost, Buttondown, listmonk). Addresses are confirmed
only when the file says so, those it says unsubscribed or bounced are never mailed, the others get a
confirmation email. Prints counts that add up to the rows read, the ignored columns and the refused lines.
Importing the same file twice changes nothing.

Arguments and options:
  FILE            the CSV file to read
${API_OPTION}

Example:
  npm run cli -- subscribers import mailchimp-export.csv`;

const ERASE_USAGE = `Usage: npm run cli -- subscribers erase <email-or-id> [--api URL]

Removes the subscriber's address and name from every table (the right to be forgotten); the send-outs'
figures stay, as anonymous counts. To stop mail without forgetting, the reader's unsubscribe link is enough.

Arguments and options:
  <email-or-id>   the subscriber's address, or their id (as the dashboard and GET /api/subscribers show it)
${API_OPTION}

Example:
  npm run cli -- subscribers erase reader@example.org`;

const STATS_USAGE = `Usage: npm run cli -- stats [--days N] [--api URL]

Prints the subscribers by status, their growth day by day (new, confirmed, unsubscribed, bounced,
complained) and every send-out's figures, newest first.

Options:
  --days N        days of growth to show, 1 to 366 (default 14)
${API_OPTION}

Example:
  npm run cli -- stats --days 30`;

const ACTION_USAGE: Record<string, string> = {
  export: EXPORT_USAGE,
  import: IMPORT_USAGE,
  erase: ERASE_USAGE,
  stats: STATS_USAGE,
};

/** The words each command takes, its own name included (`stats` is named before them). */
const ACTION_WORDS: Record<string, number> = { export: 1, import: 2, erase: 2, stats: 0 };

/** A progress line on standard error: redrawn in place on a terminal, a line every 10 s otherwise. */
function progress(): { show(text: string): void; done(text: string): void } {
  const tty = process.stderr.isTTY;
  let last = 0;
  return {
    show(text) {
      const now = Date.now();
      if (tty && now - last > 100) process.stderr.write(`\r${text}\x1b[K`);
      else if (!tty && now - last > 10_000) process.stderr.write(`${text}\n`);
      else return;
      last = now;
    },
    done(text) {
      process.stderr.write(tty ? `\r${text}\x1b[K\n` : `${text}\n`);
    },
  };
}

const mb = (n: number) => `${(n / 1_048_576).toFixed(1)} MB`;

async function exportList(a: Api, values: Record<string, unknown>): Promise<void> {
  const query = new URLSearchParams();
  for (const key of ['status', 'since', 'q'] as const) {
    if (typeof values[key] === 'string') query.set(key, values[key]);
  }
  const res = await a.call(`/api/subscribers/export${query.size ? `?${query}` : ''}`);
  if (!res.body) throw new CommandError('The service sent no CSV.');
  const shown = progress();
  let lines = -1;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, next) {
      for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) lines++;
      shown.show(`Exporting… ${lines} subscribers`);
      next(null, chunk);
    },
  });
  const out = typeof values.out === 'string' ? createWriteStream(values.out) : process.stdout;
  await pipeline(Readable.fromWeb(res.body as unknown as NodeReadableStream<Uint8Array>), counter, out);
  shown.done(
    `Exported ${Math.max(0, lines)} subscribers${typeof values.out === 'string' ? ` to ${values.out}` : ''}.`,
  );
}

async function importFile(a: Api, file: string): Promise<void> {
  const size = await stat(file).then(
    (s) => s.size,
    () => {
      throw new CommandError(`Cannot read ${file}: no such file.`);
    },
  );
  const shown = progress();
  let sent = 0;
  const counting = createReadStream(file).pipe(
    new Transform({
      transform(chunk: Buffer, _encoding, next) {
        sent += chunk.length;
        shown.show(
          `Importing… ${Math.floor((sent / Math.max(1, size)) * 100)}% (${mb(sent)} of ${mb(size)})`,
        );
        next(null, chunk);
      },
    }),
  );
  const res = await a.call('/api/subscribers/import', {
    method: 'POST',
    headers: { 'content-type': 'text/csv' },
    body: Readable.toWeb(counting) as unknown as ReadableStream<Uint8Array>,
    duplex: 'half',
  });
  const report = (await res.json()) as ImportReport;
  shown.done(report.summary);
  for (const e of report.errors) process.stdout.write(`line ${e.line}: ${e.message}\n`);
  if (report.invalid > report.errors.length) {
    process.stdout.write(`… and ${report.invalid - report.errors.length} more refused lines.\n`);
  }
}

async function erase(a: Api, ref: string): Promise<void> {
  const res = await a.call(`/api/subscribers/${encodeURIComponent(ref)}`, { method: 'DELETE' });
  const body = (await res.json()) as { deliveries: number };
  process.stdout.write(
    `Erased ${ref}: the address and name are gone; ${body.deliveries} deliveries are kept as anonymous counts.\n`,
  );
}

function printStats(s: StatsView): void {
  const { subscribers: n } = s;
  const lines = [
    `Subscribers: ${n.total} (${n.confirmed} confirmed, ${n.pending} pending, ${n.unsubscribed} unsubscribed, ${n.bounced} bounced); ${s.complained} complained`,
    '',
    'Day         new  confirmed  unsubscribed  bounced  complained',
    ...s.growth.map(
      (g) =>
        `${g.day}  ${String(g.subscribed).padStart(4)}  ${String(g.confirmed).padStart(9)}  ${String(g.unsubscribed).padStart(12)}  ${String(g.bounced).padStart(7)}  ${String(g.complained).padStart(10)}`,
    ),
  ];
  if (s.sendouts.length) {
    lines.push('', 'Send-outs (newest first):');
    for (const e of s.sendouts) {
      const o = e.sendout;
      lines.push(
        `  ${e.slug}: ${o.status}, ${o.sent} sent, ${o.failed} failed, ${o.skipped} skipped, ${o.unknown} unknown, ${o.pending} pending (of ${o.total})`,
      );
    }
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

/** `npm run cli -- subscribers …` and `npm run cli -- stats`. Returns the exit code. */
export async function subscribersCommand(command: 'subscribers' | 'stats', args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      api: { type: 'string' },
      out: { type: 'string' },
      status: { type: 'string' },
      since: { type: 'string' },
      q: { type: 'string' },
      days: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const [action, target] = command === 'stats' ? ['stats', undefined] : positionals;
  const usage = (action && ACTION_USAGE[action]) ?? SUBSCRIBERS_USAGE;
  if (values.help) {
    process.stdout.write(`${usage}\n`);
    return 0;
  }
  const problem = !action
    ? 'Which command: subscribers export, import or erase?'
    : !ACTION_USAGE[action]
      ? `Unknown command "subscribers ${action}".`
      : (action === 'import' || action === 'erase') && !target
        ? `"subscribers ${action}" needs ${action === 'import' ? 'a file' : 'an address or id'}.`
        : extraWords(positionals, ACTION_WORDS[action] ?? 0);
  if (problem) {
    process.stderr.write(`${problem}\n\n${usage}\n`);
    return 2;
  }
  try {
    const a = publisherApi(values.api);
    if (action === 'export') await exportList(a, values);
    else if (action === 'import') await importFile(a, target as string);
    else if (action === 'erase') await erase(a, target as string);
    else {
      const days = values.days ? `?days=${encodeURIComponent(values.days)}` : '?days=14';
      printStats((await (await a.call(`/api/stats${days}`)).json()) as StatsView);
    }
    return 0;
  } catch (error) {
    const message = error instanceof CommandError ? error.message : describeError(error).error;
    process.stderr.write(`${command === 'stats' ? 'stats' : `subscribers ${action}`} failed: ${message}\n`);
    return error instanceof CommandError ? error.code : 1;
  }
}
