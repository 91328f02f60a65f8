import { Resolver } from 'node:dns/promises';
import type { Env } from '../config.js';
import { ConfigError, PLACEHOLDER_FROM } from '../config.js';
import { withKeyFile } from '../entry/key-file.js';
import type { Check, SuggestedRecord } from './check.js';
import { domainOf, organizationalDomain } from './check.js';
import { checkConfiguration, configurationFailed } from './configuration.js';
import { checkDatabase } from './database.js';
import type { TxtResolver } from './dns.js';
import { checkDkim, checkDmarc, checkSpf, dkimSuggestion, dmarcSuggestion, spfSuggestion } from './dns.js';
import { checkBounceMailbox } from './mailbox.js';
import { checkSmtp } from './smtp.js';

export interface DoctorOptions {
  /** Where TXT records are looked up; by default the system's resolvers, or `dnsServers`. */
  resolver?: TxtResolver;
  /** Resolvers to ask instead of the system's, e.g. ['1.1.1.1'] or ['127.0.0.1:5353']. */
  dnsServers?: string[];
  smtpTimeoutMs?: number;
}

export interface DoctorReport {
  checks: Check[];
  /** The DNS records this configuration needs; `needed` when the check of that record did not pass. */
  records: (SuggestedRecord & { needed: boolean })[];
}

/** A resolver that gives up soon enough for a command someone waits on (about 9 s at worst). */
export function systemResolver(servers?: string[]): TxtResolver {
  const resolver = new Resolver({ timeout: 3000, tries: 2 });
  if (servers?.length) resolver.setServers(servers);
  return resolver;
}

/** Runs every check the doctor knows against the environment the service would start with. */
export async function runDoctor(env: Env, options: DoctorOptions = {}): Promise<DoctorReport> {
  let withKey: Env;
  try {
    withKey = withKeyFile(env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    return {
      checks: [
        configurationFailed(
          error.message,
          'point DKIM_PRIVATE_KEY_FILE at the PEM file, readable by this user',
        ),
      ],
      records: [],
    };
  }
  const { config, checks } = checkConfiguration(withKey);
  if (!config) return { checks, records: [] };
  const resolver = options.resolver ?? systemResolver(options.dnsServers);
  const fromDomain = config.mailFrom === PLACEHOLDER_FROM ? undefined : domainOf(config.mailFrom);
  const dkim = config.resendApiKey ? undefined : config.dkim;
  // A key the DKIM setup check refused has no public half to look for.
  const keyRefused = checks.some((c) => c.name === 'DKIM setup' && c.verdict === 'fail');

  const noDomain = (name: string): Check => ({
    name,
    verdict: 'skip',
    detail: 'MAIL_FROM is not set: no domain to look up',
  });
  const [database, smtp, bounceMailbox, spf, dkimCheck, dmarc] = await Promise.all([
    checkDatabase(config),
    mailCheck(config, options),
    checkBounceMailbox(config),
    fromDomain ? checkSpf(resolver, fromDomain) : noDomain('SPF'),
    dkim && !keyRefused ? checkDkim(resolver, dkim) : dkimSkipped(config.resendApiKey, keyRefused),
    fromDomain ? checkDmarc(resolver, fromDomain, dkim?.domain) : noDomain('DMARC'),
  ]);
  const records: DoctorReport['records'] = [];
  if (fromDomain) records.push({ ...spfSuggestion(fromDomain), needed: spf.verdict !== 'ok' });
  if (dkim && !keyRefused) {
    records.push({
      ...dkimSuggestion(dkim.domain, dkim.selector, dkim.privateKey),
      needed: dkimCheck.verdict !== 'ok',
    });
  }
  if (fromDomain) {
    records.push({ ...dmarcSuggestion(organizationalDomain(fromDomain)), needed: dmarc.verdict === 'fail' });
  }
  const mailbox = bounceMailbox ? [bounceMailbox] : [];
  return { checks: [...checks, database, smtp, ...mailbox, spf, dkimCheck, dmarc], records };
}

function mailCheck(
  config: { resendApiKey?: string; smtpUrl?: string; dataDir: string },
  options: DoctorOptions,
): Promise<Check> | Check {
  if (config.resendApiKey) {
    return {
      name: 'SMTP',
      verdict: 'skip',
      detail: 'RESEND_API_KEY is set: letters go through the Resend API, not SMTP',
    };
  }
  if (!config.smtpUrl) {
    return {
      name: 'SMTP',
      verdict: 'skip',
      detail: `no SMTP_URL: letters are written as .eml files to ${config.dataDir}/outbox and reach nobody`,
      fix: 'set SMTP_URL=smtp://user:password@host:587 (or smtps://…:465) to send for real',
    };
  }
  return checkSmtp(config.smtpUrl, { timeoutMs: options.smtpTimeoutMs });
}

function dkimSkipped(resend: string | undefined, keyRefused: boolean): Check {
  const name = 'DKIM';
  if (resend) {
    return {
      name,
      verdict: 'skip',
      detail: 'Resend signs letters: its dashboard shows whether the domain verified',
    };
  }
  if (keyRefused) return { name, verdict: 'skip', detail: 'no usable key to compare (see DKIM setup)' };
  return { name, verdict: 'skip', detail: 'DKIM is not configured: no key to look up' };
}
