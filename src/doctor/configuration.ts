import { createPrivateKey } from 'node:crypto';
import { enabledWebhooks } from '../bounces/webhooks.js';
import type { Config, Env } from '../config.js';
import { ConfigError, PLACEHOLDER_FROM, parseConfig } from '../config.js';
import { readTokenFile, tokenFilePath } from '../entry/key-file.js';
import type { Check } from './check.js';
import { aligned, domainOf, organizationalDomain } from './check.js';

/** Mailbox providers whose DMARC policy refuses their domain in mail sent from anyone else's servers. */
const MAILBOX_PROVIDERS = new Set([
  'gmail.com',
  'googlemail.com',
  'yahoo.com',
  'outlook.com',
  'hotmail.com',
  'live.com',
  'icloud.com',
  'me.com',
  'aol.com',
  'proton.me',
  'protonmail.com',
  'gmx.com',
  'gmx.de',
  'web.de',
]);

/**
 * Parses the service's settings as it would at start and checks the ones deliverability depends on.
 * Without a config (it does not parse) the one check says why, and nothing else can be checked.
 */
export function checkConfiguration(env: Env): { config?: Config; checks: Check[] } {
  let config: Config;
  try {
    config = parseConfig(env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    return {
      checks: [
        configurationFailed(
          error.message.replace(/^Invalid configuration:\n/, 'the settings do not parse:\n'),
          'fix the variables named above; the service refuses to start until then',
        ),
      ],
    };
  }
  const checks: Check[] = [
    { name: 'configuration', verdict: 'ok', detail: 'the settings parse as the service reads them' },
    publicUrl(env, config),
    sender(config),
    publisherToken(config, env),
    ...dkim(config),
    ...bounceSources(config),
  ];
  return { config, checks };
}

/** The configuration check when the settings can't be read at all: nothing else can be checked then. */
export function configurationFailed(detail: string, fix: string): Check {
  return { name: 'configuration', verdict: 'fail', detail, fix };
}

function publicUrl(env: Env, config: Config): Check {
  const name = 'PUBLIC_URL';
  if (!env.PUBLIC_URL) {
    return {
      name,
      verdict: 'fail',
      detail: `not set: links in letters (confirm, unsubscribe) would point at ${config.publicUrl}`,
      fix: 'set PUBLIC_URL to the https:// address readers reach the service at',
    };
  }
  if (!config.publicUrl.startsWith('https://')) {
    return {
      name,
      verdict: 'warn',
      detail: `${config.publicUrl} is not https: mail clients offer one-click unsubscribe only for https:// links`,
      fix: 'serve the service over TLS and set PUBLIC_URL=https://…',
    };
  }
  return { name, verdict: 'ok', detail: `${config.publicUrl} (https, one-click unsubscribe can be offered)` };
}

function sender(config: Config): Check {
  const name = 'MAIL_FROM';
  if (config.mailFrom === PLACEHOLDER_FROM) {
    return {
      name,
      verdict: 'fail',
      detail: 'not set: letters would go out from the placeholder newsletter@example.invalid',
      fix: 'set MAIL_FROM="Essays <essays@your-domain>" with a domain whose DNS you control',
    };
  }
  const domain = domainOf(config.mailFrom);
  if (MAILBOX_PROVIDERS.has(domain)) {
    return {
      name,
      verdict: 'fail',
      detail: `${domain} is a mailbox provider's domain: its DMARC policy rejects mail from other servers`,
      fix: 'send from a domain you own (e.g. essays@news.your-site.com) and publish its SPF, DKIM and DMARC',
    };
  }
  return { name, verdict: 'ok', detail: `letters come from ${domain}` };
}

function publisherToken(config: Config, env: NodeJS.ProcessEnv): Check {
  const name = 'PUBLISHER_TOKEN';
  if (config.publisherTokenGenerated) {
    const path = tokenFilePath(env);
    return {
      name,
      verdict: 'ok',
      detail: readTokenFile(path)
        ? `not set: the service uses the token it made at its first start, kept in ${path}`
        : `not set: the first start makes one and keeps it in ${path}`,
    };
  }
  return { name, verdict: 'ok', detail: 'set' };
}

/** DKIM is set up, its key is usable, and its domain aligns with MAIL_FROM's (relaxed alignment). */
function dkim(config: Config): Check[] {
  if (config.resendApiKey) {
    return [
      config.dkim
        ? {
            name: 'DKIM setup',
            verdict: 'warn',
            detail: 'DKIM_* are set but unused: with RESEND_API_KEY, Resend signs letters with its own key',
            fix: 'verify the sending domain in the Resend dashboard and publish the records it shows; unset DKIM_*',
          }
        : {
            name: 'DKIM setup',
            verdict: 'ok',
            detail: 'Resend signs letters with the key of the domain verified in its dashboard',
          },
    ];
  }
  if (!config.dkim) {
    return [
      {
        name: 'DKIM setup',
        verdict: 'warn',
        detail:
          'DKIM_DOMAIN, DKIM_SELECTOR, DKIM_PRIVATE_KEY not set: letters are not signed by this service',
        fix:
          'unless your SMTP provider signs for your domain, generate a key (docs/deliverability.md says how) and set ' +
          'DKIM_DOMAIN, DKIM_SELECTOR and DKIM_PRIVATE_KEY_FILE',
      },
    ];
  }
  const checks: Check[] = [keyCheck(config.dkim.privateKey)];
  const fromDomain = domainOf(config.mailFrom);
  if (config.mailFrom === PLACEHOLDER_FROM) return checks;
  const dkimDomain = config.dkim.domain.toLowerCase();
  checks.push(
    aligned(fromDomain, dkimDomain)
      ? {
          name: 'alignment',
          verdict: 'ok',
          detail:
            fromDomain === dkimDomain
              ? `DKIM_DOMAIN is MAIL_FROM's domain, ${dkimDomain}: DMARC sees the signature as aligned`
              : `${dkimDomain} (DKIM_DOMAIN) and ${fromDomain} (MAIL_FROM) share the organizational domain ` +
                `${organizationalDomain(fromDomain)}: aligned for DMARC's relaxed mode (judged without the public suffix list)`,
        }
      : {
          name: 'alignment',
          verdict: 'fail',
          detail: `MAIL_FROM's ${fromDomain} and DKIM_DOMAIN ${dkimDomain} are unrelated: DMARC fails even with a valid signature`,
          fix: `set DKIM_DOMAIN=${fromDomain} (and publish the key there), or send from an address at ${dkimDomain}`,
        },
  );
  return checks;
}

function keyCheck(pem: string): Check {
  const name = 'DKIM setup';
  try {
    const key = createPrivateKey(pem);
    const bits = key.asymmetricKeyDetails?.modulusLength;
    if (key.asymmetricKeyType === 'rsa' && bits !== undefined && bits < 2048) {
      return {
        name,
        verdict: bits < 1024 ? 'fail' : 'warn',
        detail: `the RSA key has ${bits} bits: receivers ignore keys under 1024 bits and distrust 1024`,
        fix: 'generate a 2048-bit key: openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out dkim.pem',
      };
    }
    if (key.asymmetricKeyType !== 'rsa' && key.asymmetricKeyType !== 'ed25519') {
      return {
        name,
        verdict: 'fail',
        detail: `a ${key.asymmetricKeyType} key: DKIM signs with RSA or Ed25519 only`,
        fix: 'generate an RSA key: openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out dkim.pem',
      };
    }
    const kind = key.asymmetricKeyType === 'rsa' ? `a ${bits}-bit RSA key` : 'an Ed25519 key';
    return { name, verdict: 'ok', detail: `letters are signed with ${kind}` };
  } catch (error) {
    return {
      name,
      verdict: 'fail',
      detail: `DKIM_PRIVATE_KEY is not a usable private key (${(error as Error).message})`,
      fix: 'give the PEM file openssl wrote, whole (-----BEGIN PRIVATE KEY----- …), in DKIM_PRIVATE_KEY_FILE',
    };
  }
}

/**
 * Each configured bounce webhook (its setting's shape was checked by parsing: a bad one fails the
 * configuration check above, naming the variable), and a warning when the provider letters go through
 * reports bounces nowhere the service listens.
 */
function bounceSources(config: Config): Check[] {
  const checks: Check[] = enabledWebhooks(config).map((w) => ({
    name: `${w.source} webhook`,
    verdict: 'ok' as const,
    detail: `on: ${config.publicUrl}${w.path} (${w.settings} has the expected shape)`,
  }));
  if (config.resendApiKey && !config.resendWebhookSecret) {
    checks.push({
      name: 'resend webhook',
      verdict: 'warn',
      detail: 'letters go through Resend, but Resend’s bounce and complaint reports are not received',
      fix: `add a webhook in Resend for ${config.publicUrl}/webhooks/resend (email.bounced, email.complained, email.delivered) and set RESEND_WEBHOOK_SECRET to its signing secret (docs/deliverability.md)`,
    });
  }
  if (config.sesSnsTopicArns.length > 0) {
    checks.push({
      name: 'ses webhook',
      verdict: 'ok',
      detail: `on: ${config.publicUrl}/webhooks/ses (SES_SNS_TOPIC_ARN has the expected shape)`,
    });
  }
  return checks;
}
