import { parseArgs } from 'node:util';
import type { Config } from '../config.js';
import { ConfigError, parseConfig } from '../config.js';
import { openDatabase } from '../db/open.js';
import { doctorCommand } from '../doctor/cli.js';
import type { EssayInput, SendoutView } from '../essays/service.js';
import {
  essayInput,
  findEssay,
  publish,
  resendUnknown,
  SLUG_SHAPE,
  sendoutProgress,
} from '../essays/service.js';
import { feedCommand } from '../feed/cli.js';
import { subscribersCommand } from '../list/cli.js';
import { describeError } from '../log.js';
import { API_OPTION, CommandError, extraWords, publisherApi, subscribersGet } from './api-client.js';

const USAGE = `Usage: npm run cli -- <command> [arguments] [options]

Commands (npm run cli -- <command> --help for each):
  publish <slug> …         publish an essay and follow its send-out (also: npm run publish -- …)
  resend-unknown <slug>    send an essay's letters whose outcome is unknown again, by your choice
  subscribers export|import|erase …   the list
  stats                    subscribers and send-outs in figures
  feed send <entry>        send one feed entry the watcher held back
  doctor                   check the configuration, database, SMTP and DNS (also: npm run doctor)

Example:
  npm run publish -- on-walking --title "On walking" --url https://example.org/essays/on-walking`;

/** How publish and resend-unknown reach the service, and whether they follow the send-out. */
const SENDOUT_HELP = `${API_OPTION}
  --db            go straight to the database (DATABASE_URL, or the embedded one when no server has it open);
                  a running dispatcher (npm start or npm run worker) sends the letters
  --no-wait       return once the request is recorded instead of following the send-out to the end`;

const PUBLISH_USAGE = `Usage: npm run publish -- <slug> --title "…" --url https://… [--summary "…"] [--api URL | --db] [--no-wait]
   (or: npm run cli -- publish …)

Publishes an essay and shows its send-out until every delivery is done: every subscriber confirmed at that
moment gets one letter. Publishing the same slug again sends nothing more and shows the same send-out.

Arguments and options:
  <slug>          the essay's short name: letters, digits and . _ ~ - (e.g. on-walking)
  --title TEXT    the essay's title (the letter's subject)
  --url URL       where the essay is read
  --summary TEXT  a few lines for the letter (optional)
${SENDOUT_HELP}

Example:
  npm run publish -- on-walking --title "On walking" --url https://example.org/essays/on-walking`;

const RESEND_USAGE = `Usage: npm run cli -- resend-unknown <slug> [--api URL | --db] [--no-wait]

Sends again the essay's letters whose outcome is unknown (the process stopped after handing them to the mail
server, which may have taken them without saying so): some of those readers may get it twice. Never done
unless you ask. The letters keep their Message-ID.

Arguments and options:
  <slug>          the essay whose unknown letters to send again
${SENDOUT_HELP}

Example:
  npm run cli -- resend-unknown on-walking`;

/** What the CLI needs from wherever it publishes: publish once, or resend unknowns, then ask for progress. */
interface Publisher {
  publish(input: EssayInput): Promise<{ created: boolean; sendout: SendoutView }>;
  resendUnknown(slug: string): Promise<{ resent: number; sendout: SendoutView }>;
  progress(slug: string): Promise<SendoutView>;
  close(): Promise<void>;
}

/** Arguments the command cannot use: the message, then the command's own usage. */
class UsageError extends Error {
  constructor(
    message: string,
    readonly usage = USAGE,
  ) {
    super(message);
  }
}

/** How the commands that start a send-out reach the service, and whether they follow it to the end. */
const SENDOUT_OPTIONS = {
  api: { type: 'string' },
  db: { type: 'boolean', default: false },
  'no-wait': { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (command === 'feed') return feedCommand(rest);
  if (command === 'doctor') return doctorCommand(rest);
  if (command === 'subscribers' || command === 'stats') return subscribersCommand(command, rest);
  if (command === 'resend-unknown') return resendUnknownCommand(rest);
  if (command !== 'publish') throw new UsageError(`Unknown command "${command ?? ''}".`);
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      title: { type: 'string' },
      url: { type: 'string' },
      summary: { type: 'string' },
      ...SENDOUT_OPTIONS,
    },
  });
  if (values.help) {
    process.stdout.write(`${PUBLISH_USAGE}\n`);
    return 0;
  }
  const extra = extraWords(positionals, 1);
  if (extra) throw new UsageError(extra, PUBLISH_USAGE);
  const parsed = essayInput.safeParse({
    slug: positionals[0],
    title: values.title,
    url: values.url,
    summary: values.summary,
  });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new UsageError(
      `${String(issue?.path[0] ?? 'input')}: ${issue?.message ?? 'invalid'}`,
      PUBLISH_USAGE,
    );
  }
  const publisher = values.db ? await databasePublisher(parseConfig(process.env)) : apiPublisher(values.api);
  try {
    const { created, sendout } = await publisher.publish(parsed.data);
    process.stdout.write(
      created
        ? `Published "${parsed.data.slug}": ${subscribersGet(sendout.total)}\n`
        : `"${parsed.data.slug}" was already published: nothing more is sent. Its send-out:\n`,
    );
    const final = values['no-wait']
      ? sendout
      : await follow(() => publisher.progress(parsed.data.slug), sendout);
    process.stdout.write(`${summary(final)}\n`);
    return 0;
  } finally {
    await publisher.close();
  }
}

/** `resend-unknown <slug>`: the publisher's explicit choice to send the essay's unknown letters again. */
async function resendUnknownCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: SENDOUT_OPTIONS,
  });
  if (values.help) {
    process.stdout.write(`${RESEND_USAGE}\n`);
    return 0;
  }
  const slug = positionals[0];
  if (!slug || positionals.length > 1) throw new UsageError('Name one essay by its slug.', RESEND_USAGE);
  if (!SLUG_SHAPE.test(slug)) throw new UsageError(`"${slug.slice(0, 200)}" is not a slug.`, RESEND_USAGE);
  const publisher = values.db ? await databasePublisher(parseConfig(process.env)) : apiPublisher(values.api);
  try {
    const { resent, sendout } = await publisher.resendUnknown(slug);
    process.stdout.write(
      resent === 0
        ? `No letter of "${slug}" is waiting with an unknown outcome: nothing was resent.\n`
        : `Resending ${resent} letter${resent === 1 ? '' : 's'} of "${slug}" whose outcome was unknown (same Message-ID; some readers may get it twice).\n`,
    );
    const final =
      values['no-wait'] || resent === 0 ? sendout : await follow(() => publisher.progress(slug), sendout);
    process.stdout.write(`${summary(final)}\n`);
    return 0;
  } finally {
    await publisher.close();
  }
}

function apiPublisher(apiFlag: string | undefined): Publisher {
  const api = publisherApi(apiFlag);
  const call = async (path: string, init: RequestInit = {}) => {
    const res = await api.call(path, { ...init, headers: { 'content-type': 'application/json' } });
    const body = (await res.json().catch(() => ({}))) as { sendout?: SendoutView; resent?: number };
    if (!body.sendout) throw new CommandError(`${res.status}: unexpected answer from ${api.base}`);
    return { status: res.status, body, sendout: body.sendout };
  };
  return {
    async publish(input) {
      const { status, sendout } = await call('/api/essays', { method: 'POST', body: JSON.stringify(input) });
      return { created: status === 202, sendout };
    },
    async resendUnknown(slug) {
      const path = `/api/essays/${encodeURIComponent(slug)}/resend-unknown`;
      const { body, sendout } = await call(path, { method: 'POST' });
      return { resent: Number(body.resent ?? 0), sendout };
    },
    progress: async (slug) => (await call(`/api/essays/${encodeURIComponent(slug)}`)).sendout,
    close: async () => {},
  };
}

async function databasePublisher(config: Config): Promise<Publisher> {
  const database = await openDatabase(config);
  return {
    async publish(input) {
      const { essay, created } = await publish(database.db, input);
      return { created, sendout: await sendoutProgress(database.db, essay.id) };
    },
    async resendUnknown(slug) {
      const essay = await findEssay(database.db, slug);
      if (!essay) throw new Error(`No essay has the slug "${slug}".`);
      const resent = await resendUnknown(database.db, essay.id);
      return { resent, sendout: await sendoutProgress(database.db, essay.id) };
    },
    async progress(slug) {
      const essay = await findEssay(database.db, slug);
      if (!essay) throw new Error(`essay ${slug} not found`);
      return sendoutProgress(database.db, essay.id);
    },
    close: () => database.close(),
  };
}

/** Polls until the send-out is done, drawing a progress bar on a terminal (a line every 10 s otherwise). */
async function follow(progress: () => Promise<SendoutView>, first: SendoutView): Promise<SendoutView> {
  const tty = process.stdout.isTTY;
  let current = first;
  let lastLine = 0;
  while (current.status !== 'done') {
    if (tty) process.stdout.write(`\r${bar(current)}`);
    else if (Date.now() - lastLine > 10_000) {
      process.stdout.write(`${bar(current)}\n`);
      lastLine = Date.now();
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
    current = await progress();
  }
  if (tty) process.stdout.write(`\r${bar(current)}\n`);
  return current;
}

function bar(s: SendoutView): string {
  const done = s.total - s.pending;
  const ratio = s.total === 0 ? 1 : done / s.total;
  const width = 30;
  const filled = Math.round(ratio * width);
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${Math.floor(ratio * 100)}% ${done}/${s.total}`;
}

function summary(s: SendoutView): string {
  return `Send-out ${s.status}: ${s.sent} sent, ${s.failed} failed, ${s.skipped} skipped, ${s.unknown} unknown, ${s.pending} pending (of ${s.total}).`;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    if (error instanceof UsageError) {
      process.stderr.write(`${error.message}\n\n${error.usage}\n`);
      process.exit(2);
    }
    // node:util's parseArgs refuses an option the command does not take (ERR_PARSE_ARGS_UNKNOWN_OPTION…).
    if (String((error as { code?: unknown }).code).startsWith('ERR_PARSE_ARGS')) {
      const [command, action] = process.argv.slice(2);
      const named = ['export', 'import', 'erase', 'send'].includes(action ?? '')
        ? `${command} ${action}`
        : command;
      process.stderr.write(
        `${(error as Error).message}\n\nnpm run cli -- ${named} --help lists its options.\n`,
      );
      process.exit(2);
    }
    const doing = process.argv[2] === 'resend-unknown' ? 'Resending' : 'Publishing';
    const message =
      error instanceof ConfigError || error instanceof CommandError
        ? error.message
        : `${doing} failed: ${describeError(error).error}`;
    process.stderr.write(`${message}\n`);
    process.exit(error instanceof CommandError ? error.code : 1);
  },
);
