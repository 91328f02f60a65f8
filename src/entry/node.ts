import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { Config } from '../config.js';
import { ConfigError, parseConfig } from '../config.js';
import type { Database } from '../db/client.js';
import { openDatabase } from '../db/open.js';
import type { Deps } from '../deps.js';
import type { Dispatcher } from '../dispatch/dispatcher.js';
import { createDispatcher } from '../dispatch/dispatcher.js';
import { announceWork, createWaker, WORK_CHANNEL } from '../dispatch/wake.js';
import type { Logger } from '../log.js';
import { batchedStdout, createLogger, describeError, logFormatFor } from '../log.js';
import type { Mailer } from '../mail/mailer.js';
import { createRenderer } from '../mail/render.js';
import { createSmtpMailer } from '../mail/smtp.js';
import { loadTemplates } from '../mail/templates-fs.js';
import { withKeyFile, withTokenFile } from './key-file.js';
import { trimAtRest } from './rest.js';

// What only some runs need is imported when they need it: a dispatcher alone (`npm run worker`) loads no
// HTTP app, router or OpenAPI schemas, no embedded database with PostgreSQL, no feed parser without a feed.
/** The mailer the configuration asks for: Resend's API, SMTP when SMTP_URL is set, else the .eml outbox. */
export async function createMailer(config: Config, log: Logger): Promise<Mailer> {
  if (config.resendApiKey) {
    const { createResendMailer } = await import('../mail/resend.js');
    return createResendMailer({ apiKey: config.resendApiKey, baseUrl: config.resendApiUrl });
  }
  const sign = config.dkim ? (await import('../mail/dkim.js')).createDkimSigner(config.dkim) : undefined;
  if (config.smtpUrl)
    return createSmtpMailer({ url: config.smtpUrl, connections: config.sendConcurrency, sign });
  const { createOutboxMailer } = await import('../mail/outbox.js');
  return createOutboxMailer({ dir: outboxFolder(config), log: (line) => log.info(line), sign });
}

/** Where emails go as files when there is neither RESEND_API_KEY nor SMTP_URL. */
const outboxFolder = (config: Config) => join(config.dataDir, 'outbox');
const sendsToOutbox = (config: Config) => !config.resendApiKey && !config.smtpUrl;

/**
 * `npm start`: the HTTP service with a dispatcher inside (unless DISPATCHER=false or --no-dispatcher).
 * `npm run worker` (--worker): a dispatcher alone, for sites that add workers against one PostgreSQL.
 */
async function main(argv: string[]): Promise<void> {
  const out = batchedStdout();
  const workerOnly = argv.includes('--worker');
  let config: Config;
  let tokenFile: ReturnType<typeof withTokenFile>['tokenFile'];
  try {
    const withToken = withTokenFile(withKeyFile(process.env));
    tokenFile = withToken.tokenFile;
    config = parseConfig(withToken.env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`${error.message}\n`);
    process.exit(1);
  }
  const log = createLogger(out, logFormatFor(config.logFormat, process.stdout.isTTY));
  for (const warning of config.warnings) log.warn({ msg: warning });

  // A port already taken is said before any setup, in words (the server would only find out after it).
  if (!workerOnly && !(await portIsFree(config.port))) {
    process.stderr.write(
      `Port ${config.port} is already in use: another program (another oneletter?) listens there. ` +
        'Stop it, or set PORT to a free port.\n',
    );
    process.exit(1);
  }
  if (!config.databaseUrl) {
    const first = !existsSync(join(config.dataDir, 'pg', 'PG_VERSION'));
    log.info({
      msg: first
        ? `setting up the embedded database in ${config.dataDir} (the first start only: a few seconds)`
        : `opening the embedded database in ${config.dataDir}`,
    });
  }

  let database: Database;
  try {
    database = await openDatabase(config);
  } catch (error) {
    const hint =
      // DatabaseLockedError (src/db/pglite.ts), by name: PGlite's module is loaded only when it is used.
      (error as Error | undefined)?.name === 'DatabaseLockedError'
        ? (error as Error).message
        : `Could not open the database (${config.databaseUrl ? 'DATABASE_URL' : `embedded, in ${config.dataDir}`}): ${describeError(error).error}`;
    process.stderr.write(`${hint}\n`);
    process.exit(1);
  }
  const renderer = createRenderer(loadTemplates());
  const mailer = await createMailer(config, log);
  const runDispatcher = workerOnly || (config.dispatcher && !argv.includes('--no-dispatcher'));
  let dispatcher: Dispatcher | undefined;
  if (runDispatcher) {
    const started = createDispatcher({ db: database.db, mailer, renderer, config, log });
    dispatcher = started;
    started.start();
    // Work queued by other processes (a web process, `npm run publish`) wakes this one at once. Closing the
    // database at shutdown ends the listening too.
    await database
      .listen?.(WORK_CHANNEL, () => started.kick())
      .catch((error) => {
        log.warn({ msg: 'not listening for new work; polling only', ...describeError(error) });
      });
  }
  const kick = createWaker({
    wakeLocal: () => dispatcher?.kick(),
    announce: database.listen ? () => announceWork(database.db) : undefined,
    onError: (error) => log.warn({ msg: 'could not announce new work', ...describeError(error) }),
  });
  // The feed watcher runs where a dispatcher runs; with several, the database lets one publish each entry.
  const watcher = runDispatcher && config.feedUrl ? await import('../feed/watcher.js') : undefined;
  const feedWatcher =
    watcher && config.feedUrl
      ? watcher.startFeedWatcher({
          db: database.db,
          feedUrl: config.feedUrl,
          intervalMs: config.feedPollMs,
          timeoutMs: config.feedTimeoutMs,
          maxBytes: config.feedMaxBytes,
          log,
          kick,
        })
      : undefined;
  // The bounce mailbox is read where a dispatcher runs; with several, each report is acted on once.
  const mailbox =
    runDispatcher && config.bounceMailboxUrl ? await import('../bounces/mailbox.js') : undefined;
  const bounceMailbox =
    mailbox && config.bounceMailboxUrl
      ? mailbox.startBounceMailbox({
          db: database.db,
          config: { ...config, bounceMailboxUrl: config.bounceMailboxUrl },
          log,
          intervalMs: config.bounceMailboxPollMs,
        })
      : undefined;
  log.info({
    msg: workerOnly ? 'dispatcher started' : 'oneletter starting',
    database:
      database.kind === 'postgres' ? 'PostgreSQL (DATABASE_URL)' : `embedded PGlite in ${config.dataDir}`,
    mail: mailer.description,
    dispatcher: runDispatcher ? 'running in this process' : 'off (run `npm run worker` elsewhere)',
    ...(watcher && config.feedUrl ? { feed: `watching ${watcher.shownUrl(config.feedUrl)}` } : {}),
    ...(mailbox && config.bounceMailboxUrl
      ? { bounces: `reading ${mailbox.shownMailbox(config.bounceMailboxUrl)}` }
      : {}),
  });

  let server: { close(callback: () => void): unknown } | undefined;
  if (!workerOnly) {
    const [{ serve }, { getConnInfo }, { createApp }, { docsAssetsFromPackage, altchaWidgetFromPackage }] =
      await Promise.all([
        import('@hono/node-server'),
        import('@hono/node-server/conninfo'),
        import('../app.js'),
        import('./vendor.js'),
      ]);
    const deps: Deps = {
      config,
      database,
      renderer,
      log,
      kick,
      mailer,
      docsAssets: docsAssetsFromPackage(),
      altchaWidget: altchaWidgetFromPackage(),
      outbox: sendsToOutbox(config)
        ? (await import('../mail/outbox.js')).createOutboxView(outboxFolder(config))
        : undefined,
      peerAddress: (c) => getConnInfo(c).remote.address,
    };
    const app = createApp(deps);
    const listening = serve({ fetch: app.fetch, port: config.port }, (info) => {
      log.info({ msg: 'listening', url: config.publicUrl, port: info.port });
      if (tokenFile) {
        out(
          `\nPUBLISHER_TOKEN is not set: the dashboard and the CLI use the token kept in ${tokenFile.path}` +
            `${tokenFile.made ? ' (made now)' : ''}:\n\n    ${config.publisherToken}\n\n` +
            'The CLI run from this folder reads it from there; set PUBLISHER_TOKEN to use your own.\n\n',
        );
      }
    });
    // Taken meanwhile (the check above came first): said the same way.
    listening.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EADDRINUSE') throw error;
      process.stderr.write(`Port ${config.port} is already in use: set PORT to a free port.\n`);
      process.exit(1);
    });
    server = listening;
  }

  const trim = trimAtRest(globalThis.gc);

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    trim.stop();
    log.info({ msg: 'stopping', signal });
    const force = setTimeout(() => {
      log.error({ msg: 'could not stop in 10 seconds; exiting' });
      process.exit(1);
    }, 10_000);
    force.unref();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    await feedWatcher?.stop();
    await bounceMailbox?.stop();
    await dispatcher?.stop();
    await mailer.close();
    await database.close();
    log.info({ msg: 'stopped' });
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

// A promise nobody awaited that failed: logged (without raw SQL parameters: addresses, tokens), and the
// process carries on. Every piece of work that matters awaits its own promises and retries; what is left
// unawaited is a driver's own (postgres.js on a cut connection), and a send-out must not stop for it: what
// was done is in the database, and the dispatcher's next round goes on from there.
process.on('unhandledRejection', (error) => {
  process.stderr.write(
    `${JSON.stringify({ level: 'error', msg: 'unhandled failure; carrying on', ...describeError(error) })}\n`,
  );
});
process.on('uncaughtException', (error) => {
  process.stderr.write(
    `${JSON.stringify({ level: 'error', msg: 'uncaught exception', ...describeError(error) })}\n`,
  );
  process.exit(1);
});

main(process.argv.slice(2)).catch((error) => {
  process.stderr.write(`oneletter could not start: ${describeError(error).error}\n`);
  process.exit(1);
});

/** Whether nothing listens on the port yet (the server itself binds it only once the app is ready). */
function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', (error: NodeJS.ErrnoException) => resolve(error.code !== 'EADDRINUSE'));
    probe.listen(port, () => probe.close(() => resolve(true)));
  });
}
