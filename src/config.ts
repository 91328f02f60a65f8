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

/** The environment variable each setting is read from (and named by in errors). */
const variables = z.registry<{ variable: string }>();

/** A setting read from the environment variable `variable`, checked and converted by `type`. */
function fromEnv<T extends z.ZodType>(variable: string, type: T): T {
  variables.add(type, { variable });
  return type;
}

const hours = (n: number) => n * 3_600_000;
const minutes = (n: number) => n * 60_000;
const seconds = (n: number) => n * 1000;

/**
 * Every setting of the service, each written once: the variable it is read from, its check, its default
 * and its unit. Settings that depend on others are filled in by `complete` below. docs/configuration.md
 * says the same for operators.
 */
const settings = z.object({
  /** NODE_ENV=production: PUBLISHER_TOKEN becomes required. */
  production: fromEnv(
    'NODE_ENV',
    z
      .string()
      .optional()
      .transform((v) => v === 'production'),
  ),
  /** HTTP port. */
  port: fromEnv('PORT', int(0, 65535).default(8787)),
  /** Base URL of links in emails; unset: http://localhost:$PORT. */
  publicUrl: fromEnv('PUBLIC_URL', httpUrl.optional()),
  /** A PostgreSQL server; unset: embedded PostgreSQL (PGlite) in dataDir. */
  databaseUrl: fromEnv(
    'DATABASE_URL',
    z
      .string()
      .regex(/^postgres(ql)?:\/\//, { error: 'expected a postgres://user:pass@host:5432/db URL' })
      .optional(),
  ),
  /** Where the embedded database and the outbox live. */
  dataDir: fromEnv('DATA_DIR', z.string().min(1).default('./data')),
  /** Log lines: `text` (time, level, message, then key=value) on a terminal, JSON lines otherwise (`auto`). */
  logFormat: fromEnv(
    'LOG_FORMAT',
    z.enum(['auto', 'text', 'json'], { error: 'expected auto, text or json' }).default('auto'),
  ),
  /** PostgreSQL connections per process. */
  dbPoolSize: fromEnv('DB_POOL_SIZE', int(1, 200).default(10)),
  /** Unset: each email is an .eml file in the outbox. */
  smtpUrl: fromEnv(
    'SMTP_URL',
    z
      .string()
      .regex(/^smtps?:\/\//, {
        error: 'expected smtp://user:pass@host:587 or smtps://user:pass@host:465',
      })
      .optional(),
  ),
  /** When set, email goes through Resend's HTTP API instead of SMTP. */
  resendApiKey: fromEnv(
    'RESEND_API_KEY',
    z.string().trim().min(8, { error: 'expected the API key from the Resend dashboard (re_…)' }).optional(),
  ),
  resendApiUrl: fromEnv('RESEND_API_URL', httpUrl.default('https://api.resend.com')),
  dkimDomain: fromEnv(
    'DKIM_DOMAIN',
    z
      .string()
      .trim()
      .regex(/^[a-z0-9.-]+\.[a-z]{2,}$/i, { error: 'expected the signing domain, e.g. example.com' })
      .optional(),
  ),
  dkimSelector: fromEnv(
    'DKIM_SELECTOR',
    z
      .string()
      .trim()
      .regex(/^[a-z0-9._-]+$/i, { error: 'expected the selector of the DNS record, e.g. oneletter' })
      .optional(),
  ),
  dkimPrivateKey: fromEnv(
    'DKIM_PRIVATE_KEY',
    z
      .string()
      .transform((v) => v.replace(/\\n/g, '\n').trim())
      .pipe(z.string().regex(/^-----BEGIN [A-Z ]*PRIVATE KEY-----/, { error: 'expected a PEM private key' }))
      .optional(),
  ),
  /** The sender; unset: PLACEHOLDER_FROM, with a warning. */
  mailFrom: fromEnv(
    'MAIL_FROM',
    z
      .string()
      .trim()
      .regex(/^(?:[^<>]*<[^<>\s@]+@[^<>\s@]+>|[^<>\s@]+@[^<>\s@]+)$/, {
        error: 'expected an address like "Essays <essays@example.com>" or essays@example.com',
      })
      .optional(),
  ),
  /** Bearer token for /api/* and the dashboard; unset: a random one for this run. */
  publisherToken: fromEnv(
    'PUBLISHER_TOKEN',
    z.string().min(16, { error: 'expected at least 16 characters' }).optional(),
  ),
  /** Origins allowed for CORS and `redirect`. */
  allowedOrigins: fromEnv('ALLOWED_ORIGINS', commaList.pipe(z.array(origin))),
  /** Behind a reverse proxy: the client's IP (and the dashboard's address) from its X-Forwarded-* headers. */
  trustProxy: fromEnv('TRUST_PROXY', bool.default(false)),
  siteName: fromEnv('SITE_NAME', z.string().trim().min(1).max(100).default('Essays')),
  /** The site's address, linked from pages and emails; unset: publicUrl. */
  siteUrl: fromEnv('SITE_URL', httpUrl.optional()),
  confirmTokenTtlMs: fromEnv(
    'CONFIRM_TOKEN_TTL_HOURS',
    int(1, 24 * 365)
      .default(48)
      .transform(hours),
  ),
  /** At most one confirmation email per address in this time. */
  confirmResendMs: fromEnv(
    'CONFIRM_RESEND_MINUTES',
    int(0, 24 * 60)
      .default(5)
      .transform(minutes),
  ),
  /**
   * Days a signup may stay unconfirmed: past them, once its confirmation link has expired, the dispatcher
   * erases it (0: signups are kept until confirmed or erased by hand).
   */
  pendingExpiryDays: fromEnv('PENDING_EXPIRY_DAYS', int(0, 36_500).default(30)),
  /** Refuse addresses at throwaway domains (a maintained list) with 422 invalid_email. */
  blockDisposableDomains: fromEnv('BLOCK_DISPOSABLE_DOMAINS', bool.default(false)),
  /**
   * The key ALTCHA challenges are signed with; set, GET /altcha gives proof-of-work challenges and
   * POST /subscribe needs a solved one (the form then needs JavaScript). Unset: no proof of work.
   */
  altchaHmacKey: fromEnv(
    'ALTCHA_HMAC_KEY',
    z
      .string()
      .min(32, { error: 'expected at least 32 characters, e.g. the output of `openssl rand -hex 32`' })
      .optional(),
  ),
  /** How long a challenge can be solved and sent. */
  altchaExpiresSeconds: fromEnv('ALTCHA_EXPIRES_SECONDS', int(30, 86_400).default(600)),
  /**
   * The difficulty of a challenge: each asks for a counter drawn from a quarter of this up to it, and its
   * solver derives that many keys (PBKDF2, 1,000 iterations each). Checking a solution costs the service
   * one key whatever the counter.
   */
  altchaMaxCounter: fromEnv('ALTCHA_MAX_COUNTER', int(1, 1_000_000).default(200)),
  /** Keep the client's IP with each subscription request and confirmation, as consent evidence. */
  recordSignupIp: fromEnv('RECORD_SIGNUP_IP', bool.default(false)),
  /** The version of the consent text the site's form shows; unset: a hash of the forms in templates/. */
  consentTextVersion: fromEnv('CONSENT_TEXT_VERSION', z.string().trim().min(1).max(100).optional()),
  /** False: this process serves HTTP only. */
  dispatcher: fromEnv('DISPATCHER', bool.default(true)),
  /** Messages per second at most, per dispatcher (0: no limit). */
  sendRate: fromEnv('SEND_RATE', int(0, 1_000_000).default(0)),
  sendConcurrency: fromEnv('SEND_CONCURRENCY', int(1, 500).default(10)),
  batchSize: fromEnv('DISPATCH_BATCH_SIZE', int(1, 10_000).default(2000)),
  pollMs: fromEnv('DISPATCH_POLL_MS', int(10, 60_000).default(1000)),
  leaseMs: fromEnv('LEASE_SECONDS', int(2, 3600).default(30).transform(seconds)),
  maxAttempts: fromEnv('MAX_ATTEMPTS', int(1, 100).default(8)),
  retryBaseMs: fromEnv('RETRY_BASE_SECONDS', int(0, 86_400).default(30).transform(seconds)),
  bodyLimitBytes: fromEnv('BODY_LIMIT_BYTES', int(256, 10 * 1024 * 1024).default(16 * 1024)),
  /** Subscription attempts per client IP in each rate-limit window (0: no limit). */
  subscribeLimitPerIp: fromEnv('SUBSCRIBE_LIMIT_PER_IP', int(0, 1_000_000).default(30)),
  /** Subscription attempts per address in each rate-limit window (0: no limit). */
  subscribeLimitPerAddress: fromEnv('SUBSCRIBE_LIMIT_PER_ADDRESS', int(0, 1_000_000).default(5)),
  rateLimitWindowSeconds: fromEnv('RATE_LIMIT_WINDOW_SECONDS', int(1, 86_400).default(3600)),
  /** Largest CSV the subscriber import takes (it is streamed: this bounds a request, not memory). */
  importLimitBytes: fromEnv('IMPORT_LIMIT_BYTES', int(1024, 2 ** 31 - 1).default(256 * 1024 * 1024)),
  /** The site's RSS or Atom feed, watched by the dispatcher process; unset: no watcher. */
  feedUrl: fromEnv(
    'FEED_URL',
    z
      .url({ protocol: /^https?$/, error: 'expected the http:// or https:// address of an RSS or Atom feed' })
      .optional(),
  ),
  feedPollMs: fromEnv('FEED_POLL_SECONDS', int(10, 86_400).default(300).transform(seconds)),
  /** How long one read of the feed may take, body included. */
  feedTimeoutMs: fromEnv('FEED_TIMEOUT_SECONDS', int(1, 300).default(20).transform(seconds)),
  /**
   * Largest feed body read; past it reading stops and the poll fails. A feed is read whole into memory and
   * parsed there: 64 MiB is far past any real feed and still fits a Worker.
   */
  feedMaxBytes: fromEnv('FEED_MAX_BYTES', int(1024, 64 * 1024 * 1024).default(5 * 1024 * 1024)),
  /**
   * The SNS topics whose Amazon SES bounce and complaint notifications POST /webhooks/ses accepts; empty: the
   * endpoint is off (404).
   */
  sesSnsTopicArns: fromEnv(
    'SES_SNS_TOPIC_ARN',
    commaList.pipe(
      z.array(
        z.string().regex(/^arn:aws(?:-[a-z]+)*:sns:[a-z]{2}(?:-[a-z]+)+-\d:\d{12}:[A-Za-z0-9_-]{1,256}$/, {
          error:
            'expected the ARN of the SNS topic SES notifies, e.g. arn:aws:sns:us-east-1:123456789012:ses-events',
        }),
      ),
    ),
  ),
  /** Resend's webhook signing secret: POST /webhooks/resend is off (404) without it. */
  resendWebhookSecret: fromEnv(
    'RESEND_WEBHOOK_SECRET',
    z
      .string()
      .trim()
      .regex(/^whsec_[A-Za-z0-9+/]{16,}={0,2}$/, {
        error: 'expected the signing secret Resend shows for the webhook (whsec_…)',
      })
      .optional(),
  ),
  /** HTTP Basic credentials Postmark puts in the webhook URL: both, or POST /webhooks/postmark is off. */
  postmarkWebhookUser: fromEnv(
    'POSTMARK_WEBHOOK_USER',
    z
      .string()
      .regex(/^[A-Za-z0-9._~-]{1,100}$/, { error: 'expected a user name of letters, digits and . _ ~ -' })
      .optional(),
  ),
  postmarkWebhookPassword: fromEnv(
    'POSTMARK_WEBHOOK_PASSWORD',
    z
      .string()
      .regex(/^[A-Za-z0-9._~-]{16,200}$/, {
        error: 'expected at least 16 letters, digits or . _ ~ - (e.g. the output of `openssl rand -hex 16`)',
      })
      .optional(),
  ),
  /** Mailgun's HTTP webhook signing key: POST /webhooks/mailgun is off without it. */
  mailgunWebhookSigningKey: fromEnv(
    'MAILGUN_WEBHOOK_SIGNING_KEY',
    z
      .string()
      .trim()
      .regex(/^[A-Za-z0-9-]{16,200}$/, {
        error: 'expected the HTTP webhook signing key from Mailgun’s Webhooks page',
      })
      .optional(),
  ),
  /** SendGrid's Signed Event Webhook verification key (base64): POST /webhooks/sendgrid is off without it. */
  sendgridWebhookPublicKey: fromEnv(
    'SENDGRID_WEBHOOK_PUBLIC_KEY',
    z
      .string()
      .transform((v) => v.replace(/-----(BEGIN|END) PUBLIC KEY-----|\\n|\s/g, ''))
      .pipe(
        z.string().regex(/^MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE[A-Za-z0-9+/]{86}==$/, {
          error:
            'expected the verification key SendGrid shows for the signed Event Webhook (base64, MFkwEwYH…)',
        }),
      )
      .optional(),
  ),
  /** The HMAC secret of POST /webhooks/bounces (any other provider, or your own relay); off without it. */
  bounceWebhookSecret: fromEnv(
    'BOUNCE_WEBHOOK_SECRET',
    z.string().min(32, { error: 'expected at least 32 characters (e.g. `openssl rand -hex 32`)' }).optional(),
  ),
  /** Soft bounces on different letters, with no delivery reported in between, that suppress an address. */
  softBounceLimit: fromEnv('SOFT_BOUNCE_LIMIT', int(1, 100).default(3)),
  /**
   * The envelope sender of essay letters sent over SMTP, as `<local>+<id>@<domain>` (VERP): bounces come back
   * to an address that names the letter. Unset: the envelope sender is MAIL_FROM's address.
   */
  bounceAddress: fromEnv(
    'BOUNCE_ADDRESS',
    z
      .string()
      .trim()
      .regex(/^[^<>\s@+"]+@[^<>\s@]+\.[^<>\s@]+$/, {
        error: 'expected a plain address without "+", e.g. bounces@example.com',
      })
      .optional(),
  ),
  /** The mailbox BOUNCE_ADDRESS delivers to, read by the dispatcher process; unset: nobody reads it. */
  bounceMailboxUrl: fromEnv(
    'BOUNCE_MAILBOX_URL',
    z
      .string()
      .trim()
      .regex(/^imaps?:\/\/[^/@\s]+@[^/@\s]+(\/[^\s]*)?$/, {
        error: 'expected imaps://user:password@imap.example.com/INBOX',
      })
      .optional(),
  ),
  bounceMailboxPollMs: fromEnv('BOUNCE_MAILBOX_POLL_SECONDS', int(10, 86_400).default(60).transform(seconds)),
  /** The folder reports are moved to once acted on; unset: they are deleted. */
  bounceMailboxMoveTo: fromEnv('BOUNCE_MAILBOX_MOVE_TO', z.string().trim().min(1).max(200).optional()),
  /** The key the dashboard's session cookies are signed with; unset: the publisher token. */
  adminSessionSecret: fromEnv(
    'ADMIN_SESSION_SECRET',
    z.string().min(32, { error: 'expected at least 32 characters' }).optional(),
  ),
  adminSessionMs: fromEnv(
    'ADMIN_SESSION_HOURS',
    int(1, 24 * 30)
      .default(12)
      .transform(hours),
  ),
  /** Wrong publisher tokens (API or dashboard sign-in) per client IP in each rate-limit window (0: no limit). */
  wrongTokenLimitPerIp: fromEnv('WRONG_TOKEN_LIMIT_PER_IP', int(0, 1_000_000).default(10)),
});

/** The settings that depend on others, the ones that must go together, and what start-up warns about. */
const schema = settings.transform(
  ({ dkimDomain, dkimSelector, dkimPrivateKey, postmarkWebhookUser, postmarkWebhookPassword, ...s }, ctx) => {
    if (s.production && !s.publisherToken) {
      ctx.issues.push({
        code: 'custom',
        input: undefined,
        message:
          'PUBLISHER_TOKEN is required when NODE_ENV=production (at least 16 characters, e.g. the output of `openssl rand -hex 32`).',
      });
    }
    const dkimSet = [dkimDomain, dkimSelector, dkimPrivateKey].filter(Boolean).length;
    if (dkimSet > 0 && dkimSet < 3) {
      ctx.issues.push({
        code: 'custom',
        input: undefined,
        message:
          'DKIM_DOMAIN, DKIM_SELECTOR and DKIM_PRIVATE_KEY (or DKIM_PRIVATE_KEY_FILE) go together: set all three, or none.',
      });
    }
    if (Boolean(postmarkWebhookUser) !== Boolean(postmarkWebhookPassword)) {
      ctx.issues.push({
        code: 'custom',
        input: undefined,
        message: 'POSTMARK_WEBHOOK_USER and POSTMARK_WEBHOOK_PASSWORD go together: set both, or neither.',
      });
    }
    if (s.bounceMailboxUrl && !s.bounceAddress) {
      ctx.issues.push({
        code: 'custom',
        input: undefined,
        message:
          'BOUNCE_MAILBOX_URL needs BOUNCE_ADDRESS: only reports about letters sent from BOUNCE_ADDRESS can be matched to their delivery.',
      });
    }
    const publicUrl = s.publicUrl ?? `http://localhost:${s.port}`;
    const publisherToken = s.publisherToken ?? randomBytes(24).toString('base64url');
    const warnings: string[] = [];
    if (!publicUrl.startsWith('https://')) {
      warnings.push(
        `PUBLIC_URL is ${publicUrl}: mail clients offer one-click unsubscribe only for https:// links; set PUBLIC_URL=https://… in production.`,
      );
    }
    if (s.bounceAddress && s.resendApiKey) {
      warnings.push(
        'BOUNCE_ADDRESS has no effect with RESEND_API_KEY: Resend sets the envelope sender itself (its bounces reach POST /webhooks/resend).',
      );
    }
    if (!s.mailFrom) {
      warnings.push(
        `MAIL_FROM is not set: emails go out from the placeholder ${PLACEHOLDER_FROM}; set MAIL_FROM="Essays <essays@your-domain>".`,
      );
    }
    return {
      ...s,
      publicUrl,
      siteUrl: s.siteUrl ?? publicUrl,
      mailFrom: s.mailFrom ?? PLACEHOLDER_FROM,
      /** DKIM signing for SMTP and the outbox, when all three DKIM_ variables are set. */
      dkim:
        dkimDomain && dkimSelector && dkimPrivateKey
          ? { domain: dkimDomain, selector: dkimSelector, privateKey: dkimPrivateKey }
          : undefined,
      /** POST /webhooks/postmark's Basic credentials, when both are set. */
      postmarkWebhook:
        postmarkWebhookUser && postmarkWebhookPassword
          ? { user: postmarkWebhookUser, password: postmarkWebhookPassword }
          : undefined,
      publisherToken,
      /** True when PUBLISHER_TOKEN was not set and a random one was made for this run. */
      publisherTokenGenerated: !s.publisherToken,
      adminSessionSecret: s.adminSessionSecret ?? publisherToken,
      /** Things an operator should hear about at start, none fatal. */
      warnings,
    };
  },
);

export type Env = Record<string, string | undefined>;

/** The service's settings, as parseConfig makes them from the environment. */
export type Config = z.output<typeof schema>;

/** A configuration that can't be used: the message names each variable and what it expects. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

const SECRETS = new Set([
  'PUBLISHER_TOKEN',
  'RESEND_API_KEY',
  'DKIM_PRIVATE_KEY',
  'ADMIN_SESSION_SECRET',
  'RESEND_WEBHOOK_SECRET',
  'POSTMARK_WEBHOOK_PASSWORD',
  'MAILGUN_WEBHOOK_SIGNING_KEY',
  'BOUNCE_WEBHOOK_SECRET',
  'ALTCHA_HMAC_KEY',
]);

/** A bad value as the error shows it: start-up errors end up in logs, so secrets are not echoed. */
function shownValue(name: string, value: string): string {
  if (SECRETS.has(name)) return '(hidden)';
  return JSON.stringify(value.replace(/\/\/[^/@]*@/, '//***@'));
}

/** The environment variable a setting is read from. */
function variableOf(key: PropertyKey | undefined): string | undefined {
  const setting = settings.shape[key as keyof typeof settings.shape];
  return setting && variables.get(setting)?.variable;
}

/** Reads and validates every setting once; throws ConfigError naming each bad variable. */
export function parseConfig(env: Env): Config {
  // Every key present (unset ones undefined, as empty variables are), so every setting is in the Config.
  const input: Record<string, string | undefined> = {};
  for (const [key, setting] of Object.entries(settings.shape)) {
    const value = env[variables.get(setting)?.variable ?? ''];
    input[key] = value === '' ? undefined : value;
  }
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  const lines = parsed.error.issues.map((issue) => {
    const name = variableOf(issue.path[0]);
    return name ? `  ${name}=${shownValue(name, env[name] ?? '')}: ${issue.message}` : `  ${issue.message}`;
  });
  throw new ConfigError(`Invalid configuration:\n${lines.join('\n')}\nFix these variables and start again.`);
}
