import { createApp } from '../app.js';
import type { Config, Env } from '../config.js';
import { parseConfig } from '../config.js';
import type { Database } from '../db/client.js';
import { openPostgres } from '../db/postgres.js';
import type { Deps } from '../deps.js';
import { createDispatcher } from '../dispatch/dispatcher.js';
import { pollFeedOnce } from '../feed/watcher.js';
import type { Logger } from '../log.js';
import { createLogger, describeError } from '../log.js';
import { createDkimSigner } from '../mail/dkim.js';
import type { Mailer } from '../mail/mailer.js';
import { createRenderer } from '../mail/render.js';
import { createResendMailer } from '../mail/resend.js';
import { createSmtpMailer } from '../mail/smtp.js';
import { altchaWidgetInWorker } from './worker-altcha.js';
import { workerTemplates } from './worker-templates.js';

/** What Cloudflare hands the Worker: variables and secrets as strings, and an optional Hyperdrive binding. */
export interface WorkerEnv extends Record<string, unknown> {
  HYPERDRIVE?: { connectionString: string };
}

interface ExecutionContext {
  waitUntil(promise: Promise<unknown>): void;
}

interface ScheduledController {
  cron: string;
  scheduledTime: number;
}

const renderer = createRenderer(workerTemplates);
const log: Logger = createLogger((line) => console.log(line.trimEnd()));

/** Settings from the Worker's variables; the database is Hyperdrive's when bound, else DATABASE_URL. */
function configFrom(env: WorkerEnv): Config {
  const strings: Env = {};
  for (const [key, value] of Object.entries(env)) if (typeof value === 'string') strings[key] = value;
  if (env.HYPERDRIVE?.connectionString) strings.DATABASE_URL = env.HYPERDRIVE.connectionString;
  const config = parseConfig(strings);
  if (!config.databaseUrl) {
    throw new Error(
      'Set DATABASE_URL (a secret) or bind Hyperdrive as HYPERDRIVE: a Worker needs PostgreSQL.',
    );
  }
  if (!config.smtpUrl && !config.resendApiKey) {
    throw new Error('Set RESEND_API_KEY or SMTP_URL (secrets): a Worker has no outbox folder.');
  }
  return config;
}

/** One database client per request or invocation, closed when the work is done (Workers can't share sockets). */
function openDatabase(config: Config): Promise<Database> {
  return openPostgres(config.databaseUrl as string, { poolSize: 1 });
}

function createMailer(config: Config): Mailer {
  if (config.resendApiKey) {
    return createResendMailer({ apiKey: config.resendApiKey, baseUrl: config.resendApiUrl });
  }
  return createSmtpMailer({
    url: config.smtpUrl as string,
    connections: Math.min(config.sendConcurrency, 4),
    sign: config.dkim ? createDkimSigner(config.dkim) : undefined,
  });
}

/**
 * Runs dispatcher rounds until there is nothing left to do or the time budget is spent, then stops the
 * dispatcher (which releases whatever it claimed but did not hand to SMTP). Safe to run from any number of
 * invocations at once: the database hands each delivery to one of them.
 */
async function dispatchSlice(config: Config, budgetMs: number): Promise<number> {
  const database = await openDatabase(config);
  const mailer = createMailer(config);
  const dispatcher = createDispatcher({ db: database.db, mailer, renderer, config, log });
  const started = Date.now();
  let handled = 0;
  try {
    for (;;) {
      const n = await dispatcher.runOnce();
      handled += n;
      if (n === 0 || Date.now() - started > budgetMs) break;
    }
  } catch (error) {
    log.error({ msg: 'dispatch slice failed; the next one resumes', ...describeError(error) });
  } finally {
    await dispatcher.stop();
    await mailer.close();
    await database.close();
  }
  return handled;
}

/** Seconds a cron invocation may spend sending; well under the Workers limits. */
const CRON_BUDGET_MS = 20_000;
/** After a subscription or a publish, a short slice right away, so confirmations don't wait for the cron. */
const KICK_BUDGET_MS = 5_000;

export default {
  async fetch(request: Request, env: WorkerEnv, ctx: ExecutionContext): Promise<Response> {
    let config: Config;
    try {
      config = configFrom(env);
    } catch (error) {
      log.error({ msg: 'configuration problem', ...describeError(error) });
      return Response.json(
        {
          error: {
            code: 'internal',
            message: 'The service is not configured yet. Its operator can see why in the logs.',
          },
        },
        { status: 500 },
      );
    }
    const database = await openDatabase(config);
    // Connects only when it sends (the dashboard's test of a letter): nothing opened on other requests.
    const mailer = createMailer(config);
    let kicked = false;
    const deps: Deps = {
      config,
      database,
      renderer,
      log,
      mailer,
      kick: () => {
        if (kicked) return;
        kicked = true;
        ctx.waitUntil(dispatchSlice(config, KICK_BUDGET_MS));
      },
      peerAddress: (c) => c.req.header('cf-connecting-ip'),
      altchaWidget: altchaWidgetInWorker,
    };
    try {
      return await createApp(deps).fetch(request);
    } finally {
      ctx.waitUntil(Promise.all([database.close(), mailer.close()]));
    }
  },

  async scheduled(controller: ScheduledController, env: WorkerEnv, ctx: ExecutionContext): Promise<void> {
    const config = configFrom(env);
    const work = async () => {
      if (config.feedUrl && feedDue(controller.scheduledTime, config.feedPollMs)) {
        const database = await openDatabase(config);
        try {
          await pollFeedOnce({
            db: database.db,
            feedUrl: config.feedUrl,
            log,
            timeoutMs: config.feedTimeoutMs,
            maxBytes: config.feedMaxBytes,
          });
        } finally {
          await database.close();
        }
      }
      const handled = await dispatchSlice(config, CRON_BUDGET_MS);
      log.info({ msg: 'cron dispatch slice', handled });
    };
    ctx.waitUntil(work());
  },
};

/** The cron runs every minute; the feed is read every FEED_POLL_SECONDS, rounded to whole minutes. */
function feedDue(scheduledTime: number, pollMs: number): boolean {
  return Math.floor(scheduledTime / 60_000) % Math.max(1, Math.round(pollMs / 60_000)) === 0;
}
