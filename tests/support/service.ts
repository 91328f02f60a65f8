import type { AddressInfo } from 'node:net';
import { createApp } from '../../src/app.js';
import type { Config, Env } from '../../src/config.js';
import { parseConfig } from '../../src/config.js';
import type { Deps } from '../../src/deps.js';
import type { Dispatcher } from '../../src/dispatch/dispatcher.js';
import { createDispatcher } from '../../src/dispatch/dispatcher.js';
import { altchaWidgetFromPackage, docsAssetsFromPackage } from '../../src/entry/vendor.js';
import type { SubscriberDetail } from '../../src/list/schemas.js';
import { silentLogger } from '../../src/log.js';
import { createDkimSigner } from '../../src/mail/dkim.js';
import type { Mailer } from '../../src/mail/mailer.js';
import { createRenderer } from '../../src/mail/render.js';
import { createSmtpMailer } from '../../src/mail/smtp.js';
import { loadTemplates } from '../../src/mail/templates-fs.js';
import type { TestDatabase } from './db.js';
import { createTestDatabase } from './db.js';
import type { SmtpSink } from './smtp.js';
import { startSmtpSink } from './smtp.js';

export const PUBLISHER_TOKEN = 'test-publisher-token-0123456789';
export const PUBLIC_URL = 'https://news.example.test';

/** The service as tests see it: the app in memory, a fresh database, a real SMTP sink, a dispatcher. */
export interface TestService {
  app: ReturnType<typeof createApp>;
  config: Config;
  database: TestDatabase;
  smtp: SmtpSink;
  mailer: Mailer;
  dispatcher: Dispatcher;
  /** Runs dispatcher rounds until one finds nothing to do. */
  drain(): Promise<void>;
  /** POSTs JSON with the publisher token. */
  publish(essay: Record<string, unknown>): Promise<Response>;
  subscribeJson(email: string, name?: string): Promise<Response>;
  /** GET /api/subscribers/:address with the publisher token: the subscriber, their history and consent. */
  detail(email: string): Promise<SubscriberDetail>;
  close(): Promise<void>;
}

/**
 * Builds the whole service for a test file. Pass env to change settings as an operator would, and `deps` to
 * give the app its outgoing fetch or a logger to read.
 */
export async function createTestService(
  env: Env = {},
  deps: Partial<Pick<Deps, 'fetch' | 'log' | 'outbox' | 'mailer'>> = {},
): Promise<TestService> {
  const [database, smtp] = await Promise.all([createTestDatabase(), startSmtpSink()]);
  const config = parseConfig({
    PUBLIC_URL,
    PUBLISHER_TOKEN,
    MAIL_FROM: 'Essays <essays@example.test>',
    SITE_NAME: 'Test Essays',
    SMTP_URL: smtp.url,
    RETRY_BASE_SECONDS: '0',
    // Rate limits are off unless a test turns them on (tests/ratelimit.test.ts): many tests share one "client".
    SUBSCRIBE_LIMIT_PER_IP: '0',
    SUBSCRIBE_LIMIT_PER_ADDRESS: '0',
    WRONG_TOKEN_LIMIT_PER_IP: '0',
    ...env,
  });
  const renderer = createRenderer(loadTemplates());
  const mailer = createSmtpMailer({
    url: smtp.url,
    connections: config.sendConcurrency,
    sign: config.dkim ? createDkimSigner(config.dkim) : undefined,
  });
  const dispatcher = createDispatcher({ db: database.db, mailer, renderer, config, log: silentLogger });
  const app = createApp({
    config,
    database,
    renderer,
    log: silentLogger,
    docsAssets: docsAssetsFromPackage(),
    mailer,
    altchaWidget: altchaWidgetFromPackage(),
    ...deps,
  });
  return {
    app,
    config,
    database,
    smtp,
    mailer,
    dispatcher,
    async drain() {
      for (let round = 0; round < 10_000; round++) {
        if ((await dispatcher.runOnce()) === 0) return;
      }
      throw new Error('the dispatcher never ran out of work');
    },
    publish: async (essay) =>
      app.request('/api/essays', {
        method: 'POST',
        headers: { authorization: `Bearer ${PUBLISHER_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify(essay),
      }),
    async detail(email) {
      const res = await app.request(`/api/subscribers/${encodeURIComponent(email)}`, {
        headers: { authorization: `Bearer ${PUBLISHER_TOKEN}` },
      });
      if (res.status !== 200) throw new Error(`GET /api/subscribers/${email} answered ${res.status}`);
      return (await res.json()) as SubscriberDetail;
    },
    subscribeJson: async (email, name) =>
      app.request('/subscribe', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(name === undefined ? { email } : { email, name }),
      }),
    async close() {
      await dispatcher.stop();
      await mailer.close();
      await smtp.close();
      await database.destroy();
    },
  };
}

/** The confirmation link's token in an email. */
export function confirmTokenIn(text: string | undefined): string {
  const match = /\/confirm\/([A-Za-z0-9_-]{43})/.exec(text ?? '');
  if (!match?.[1]) throw new Error(`no confirmation link in: ${text}`);
  return match[1];
}

/** The unsubscribe link's token in an email. */
export function unsubscribeTokenIn(text: string | undefined): string {
  const match = /\/unsubscribe\/([A-Za-z0-9_-]{43})/.exec(text ?? '');
  if (!match?.[1]) throw new Error(`no unsubscribe link in: ${text}`);
  return match[1];
}

/** Serves a test service's app over HTTP on a free port of 127.0.0.1 (for the CLI): its address, and how to stop. */
export async function listenOnFreePort(s: TestService): Promise<{ url: string; close(): Promise<void> }> {
  const { serve } = await import('@hono/node-server');
  const server = await new Promise<ReturnType<typeof serve>>((resolve) => {
    const started = serve({ fetch: s.app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(started));
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
