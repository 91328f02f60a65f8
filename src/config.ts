import { randomBytes } from 'node:crypto';
import { z } from 'zod';

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'], { error: 'expected true or false' })
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

const int = (min: number, max: number) =>
  z.coerce
    .number({ error: 'expected a whole number' })
    .int({ error: 'expected a whole number' })
    .min(min, { error: `expected at least ${min}` })
    .max(max, { error: `expected at most ${max}` });

/** A comma-separated list, blanks dropped; each item then checked by the caller's `.pipe(...)`. */
const commaList = z
  .string()
  .default('')
  .transform((v) =>
    v
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );

const httpUrl = z
  .url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' })
  .transform((v) => v.replace(/\/+$/, ''));

const origin = z
  .url({ protocol: /^https?$/, error: 'expected origins like https://example.com' })
  .transform((v) => {
    return new URL(v).origin;
  });

/** Placeholder sender used when MAIL_FROM is unset; start-up warns about it. */
export const PLACEHOLDER_FROM = '"Newsletter (MAIL_FROM not set)" <newsletter@example.invalid>';

/** Every setting of the service, read from environment variables with safe defaults. */
const schema = z.object({
  NODE_ENV: z.string().optional(),
  PORT: int(0, 65535).default(8787),
  PUBLIC_URL: httpUrl.optional(),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, { error: 'expected a postgres://user:pass@host:5432/db URL' })
    .optional(),
  DATA_DIR: z.string().min(1).default('./data'),
  DB_POOL_SIZE: int(1, 200).default(10),
  SMTP_URL: z
    .string()
    .regex(/^smtps?:\/\//, { error: 'expected smtp://user:pass@host:587 or smtps://user:pass@host:465' })
    .optional(),
  RESEND_API_KEY: z
    .string()
    .trim()
    .min(8, { error: 'expected the API key from the Resend dashboard (re_…)' })
    .optional(),
  RESEND_API_URL: httpUrl.default('https://api.resend.com'),
  DKIM_DOMAIN: z
    .string()
    .trim()
    .regex(/^[a-z0-9.-]+\.[a-z]{2,}$/i, { error: 'expected the signing domain, e.g. example.com' })
    .optional(),
  DKIM_SELECTOR: z
    .string()
    .trim()
    .regex(/^[a-z0-9._-]+$/i, { error: 'expected the selector of the DNS record, e.g. oneletter' })
    .optional(),
  DKIM_PRIVATE_KEY: z
    .string()
    .transform((v) => v.replace(/\\n/g, '\n').trim())
    .pipe(z.string().regex(/^-----BEGIN [A-Z ]*PRIVATE KEY-----/, { error: 'expected a PEM private key' }))
    .optional(),
  MAIL_FROM: z
    .string()
    .trim()
    .regex(/^(?:[^<>]*<[^<>\s@]+@[^<>\s@]+>|[^<>\s@]+@[^<>\s@]+)$/, {
      error: 'expected an address like "Essays <essays@example.com>" or essays@example.com',
    })
    .optional(),
  PUBLISHER_TOKEN: z.string().min(16, { error: 'expected at least 16 characters' }).optional(),
  ALLOWED_ORIGINS: commaList.pipe(z.array(origin)),
  TRUST_PROXY: bool.default(false),
  SITE_NAME: z.string().trim().min(1).max(100).default('Essays'),
  SITE_URL: httpUrl.optional(),
  CONFIRM_TOKEN_TTL_HOURS: int(1, 24 * 365).default(48),
  CONFIRM_RESEND_MINUTES: int(0, 24 * 60).default(5),
  DISPATCHER: bool.default(true),
  SEND_RATE: int(0, 1_000_000).default(0),
  SEND_CONCURRENCY: int(1, 500).default(10),
  DISPATCH_BATCH_SIZE: int(1, 10_000).default(2000),
  DISPATCH_POLL_MS: int(10, 60_000).default(1000),
  LEASE_SECONDS: int(2, 3600).default(30),
  MAX_ATTEMPTS: int(1, 100).default(8),
  RETRY_BASE_SECONDS: int(0, 86_400).default(30),
  BODY_LIMIT_BYTES: int(256, 10 * 1024 * 1024).default(16 * 1024),
  SUBSCRIBE_LIMIT_PER_IP: int(0, 1_000_000).default(30),
  SUBSCRIBE_LIMIT_PER_ADDRESS: int(0, 1_000_000).default(5),
  RATE_LIMIT_WINDOW_SECONDS: int(1, 86_400).default(3600),
  IMPORT_LIMIT_BYTES: int(1024, 2 ** 31 - 1).default(256 * 1024 * 1024),
  FEED_URL: z
    .url({ protocol: /^https?$/, error: 'expected the http:// or https:// address of an RSS or Atom feed' })
    .optional(),
  FEED_POLL_SECONDS: int(10, 86_400).default(300),
  // A feed is read whole into memory and parsed there: 64 MiB is far past any real feed and still fits a Worker.
  FEED_TIMEOUT_SECONDS: int(1, 300).default(20),
  FEED_MAX_BYTES: int(1024, 64 * 1024 * 1024).default(5 * 1024 * 1024),
  SES_SNS_TOPIC_ARN: commaList.pipe(
    z.array(
      z.string().regex(/^arn:aws(?:-[a-z]+)*:sns:[a-z]{2}(?:-[a-z]+)+-\d:\d{12}:[A-Za-z0-9_-]{1,256}$/, {
        error:
          'expected the ARN of the SNS topic SES notifies, e.g. arn:aws:sns:us-east-1:123456789012:ses-events',
      }),
    ),
  ),
  ADMIN_SESSION_SECRET: z.string().min(32, { error: 'expected at least 32 characters' }).optional(),
  ADMIN_SESSION_HOURS: int(1, 24 * 30).default(12),
  WRONG_TOKEN_LIMIT_PER_IP: int(0, 1_000_000).default(10),
});

export type Env = Record<string, string | undefined>;

export interface Config {
  production: boolean;
  port: number;
  publicUrl: string;
  databaseUrl?: string;
  dataDir: string;
  dbPoolSize: number;
  smtpUrl?: string;
  /** When set, email goes through Resend's HTTP API instead of SMTP. */
  resendApiKey?: string;
  resendApiUrl: string;
  /** DKIM signing for SMTP and the outbox, when all three DKIM_ variables are set. */
  dkim?: { domain: string; selector: string; privateKey: string };
  mailFrom: string;
  publisherToken: string;
  /** True when PUBLISHER_TOKEN was not set and a random one was made for this run. */
  publisherTokenGenerated: boolean;
  allowedOrigins: string[];
  trustProxy: boolean;
  siteName: string;
  siteUrl: string;
  confirmTokenTtlMs: number;
  confirmResendMs: number;
  dispatcher: boolean;
  sendRate: number;
  sendConcurrency: number;
  batchSize: number;
  pollMs: number;
  leaseMs: number;
  maxAttempts: number;
  retryBaseMs: number;
  bodyLimitBytes: number;
  /** Subscription attempts per client IP, and per address, in each rate-limit window (0: no limit). */
  subscribeLimitPerIp: number;
  subscribeLimitPerAddress: number;
  rateLimitWindowSeconds: number;
  /** Largest CSV the subscriber import takes (it is streamed: this bounds a request, not memory). */
  importLimitBytes: number;
  /** The site's RSS or Atom feed, watched by the dispatcher process; unset: no watcher. */
  feedUrl?: string;
  feedPollMs: number;
  /** How long one read of the feed may take, body included. */
  feedTimeoutMs: number;
  /** Largest feed body read; past it reading stops and the poll fails. */
  feedMaxBytes: number;
  /**
   * The SNS topics whose Amazon SES bounce and complaint notifications POST /webhooks/ses accepts; empty: the
   * endpoint is off (404).
   */
  sesSnsTopicArns: string[];
  /** The key the dashboard's session cookies are signed with (ADMIN_SESSION_SECRET, else PUBLISHER_TOKEN). */
  adminSessionSecret: string;
  adminSessionMs: number;
  /** Wrong publisher tokens (API or dashboard sign-in) per client IP in each rate-limit window (0: no limit). */
  wrongTokenLimitPerIp: number;
  /** Things an operator should hear about at start, none fatal. */
  warnings: string[];
}

/** A configuration that can't be used: the message names each variable and what it expects. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** A bad value as the error shows it: start-up errors end up in logs, so secrets are not echoed. */
function shownValue(name: string, value: string): string {
  if (
    name === 'PUBLISHER_TOKEN' ||
    name === 'RESEND_API_KEY' ||
    name === 'DKIM_PRIVATE_KEY' ||
    name === 'ADMIN_SESSION_SECRET'
  )
    return '(hidden)';
  return JSON.stringify(value.replace(/\/\/[^/@]*@/, '//***@'));
}

/** Reads and validates every setting once; throws ConfigError naming each bad variable. */
export function parseConfig(env: Env): Config {
  const input = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => {
      const name = String(issue.path[0] ?? '');
      return `  ${name}=${shownValue(name, env[name] ?? '')}: ${issue.message}`;
    });
    throw new ConfigError(
      `Invalid configuration:\n${lines.join('\n')}\nFix these variables and start again.`,
    );
  }
  const e = parsed.data;
  const production = e.NODE_ENV === 'production';
  const warnings: string[] = [];
  if (production && !e.PUBLISHER_TOKEN) {
    throw new ConfigError(
      'Invalid configuration:\n  PUBLISHER_TOKEN is required when NODE_ENV=production (at least 16 characters,' +
        ' e.g. the output of `openssl rand -hex 32`).',
    );
  }
  const dkimSet = [e.DKIM_DOMAIN, e.DKIM_SELECTOR, e.DKIM_PRIVATE_KEY].filter(Boolean).length;
  if (dkimSet > 0 && dkimSet < 3) {
    throw new ConfigError(
      'Invalid configuration:\n  DKIM_DOMAIN, DKIM_SELECTOR and DKIM_PRIVATE_KEY (or DKIM_PRIVATE_KEY_FILE) go together: set all three, or none.',
    );
  }
  const publicUrl = e.PUBLIC_URL ?? `http://localhost:${e.PORT}`;
  if (!publicUrl.startsWith('https://')) {
    warnings.push(
      `PUBLIC_URL is ${publicUrl}: mail clients offer one-click unsubscribe only for https:// links; set PUBLIC_URL=https://… in production.`,
    );
  }
  if (!e.MAIL_FROM) {
    warnings.push(
      `MAIL_FROM is not set: emails go out from the placeholder ${PLACEHOLDER_FROM}; set MAIL_FROM="Essays <essays@your-domain>".`,
    );
  }
  const publisherToken = e.PUBLISHER_TOKEN ?? randomBytes(24).toString('base64url');
  return {
    production,
    port: e.PORT,
    publicUrl,
    databaseUrl: e.DATABASE_URL,
    dataDir: e.DATA_DIR,
    dbPoolSize: e.DB_POOL_SIZE,
    smtpUrl: e.SMTP_URL,
    resendApiKey: e.RESEND_API_KEY,
    resendApiUrl: e.RESEND_API_URL,
    dkim:
      e.DKIM_DOMAIN && e.DKIM_SELECTOR && e.DKIM_PRIVATE_KEY
        ? { domain: e.DKIM_DOMAIN, selector: e.DKIM_SELECTOR, privateKey: e.DKIM_PRIVATE_KEY }
        : undefined,
    mailFrom: e.MAIL_FROM ?? PLACEHOLDER_FROM,
    publisherToken,
    publisherTokenGenerated: !e.PUBLISHER_TOKEN,
    allowedOrigins: e.ALLOWED_ORIGINS,
    trustProxy: e.TRUST_PROXY,
    siteName: e.SITE_NAME,
    siteUrl: e.SITE_URL ?? publicUrl,
    confirmTokenTtlMs: e.CONFIRM_TOKEN_TTL_HOURS * 3_600_000,
    confirmResendMs: e.CONFIRM_RESEND_MINUTES * 60_000,
    dispatcher: e.DISPATCHER,
    sendRate: e.SEND_RATE,
    sendConcurrency: e.SEND_CONCURRENCY,
    batchSize: e.DISPATCH_BATCH_SIZE,
    pollMs: e.DISPATCH_POLL_MS,
    leaseMs: e.LEASE_SECONDS * 1000,
    maxAttempts: e.MAX_ATTEMPTS,
    retryBaseMs: e.RETRY_BASE_SECONDS * 1000,
    bodyLimitBytes: e.BODY_LIMIT_BYTES,
    subscribeLimitPerIp: e.SUBSCRIBE_LIMIT_PER_IP,
    subscribeLimitPerAddress: e.SUBSCRIBE_LIMIT_PER_ADDRESS,
    rateLimitWindowSeconds: e.RATE_LIMIT_WINDOW_SECONDS,
    importLimitBytes: e.IMPORT_LIMIT_BYTES,
    feedUrl: e.FEED_URL,
    feedPollMs: e.FEED_POLL_SECONDS * 1000,
    feedTimeoutMs: e.FEED_TIMEOUT_SECONDS * 1000,
    feedMaxBytes: e.FEED_MAX_BYTES,
    sesSnsTopicArns: e.SES_SNS_TOPIC_ARN,
    adminSessionSecret: e.ADMIN_SESSION_SECRET ?? publisherToken,
    adminSessionMs: e.ADMIN_SESSION_HOURS * 3_600_000,
    wrongTokenLimitPerIp: e.WRONG_TOKEN_LIMIT_PER_IP,
    warnings,
  };
}
