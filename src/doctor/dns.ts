import { createPrivateKey, createPublicKey } from 'node:crypto';
import type { Check, SuggestedRecord } from './check.js';
import { organizationalDomain } from './check.js';

/** What the DNS checks need: TXT look-ups (node:dns/promises Resolver has it; tests point one at a local server). */
export interface TxtResolver {
  resolveTxt(name: string): Promise<string[][]>;
}

/** A look-up that got no usable answer: DNS is not reachable from here, which is not the domain's fault. */
class DnsUnreachable extends Error {}

/**
 * The TXT records at a name, each record's strings joined as RFC 7208 and RFC 6376 say ([] when none), and
 * whether the name exists at all (NXDOMAIN: it does not).
 */
async function lookup(resolver: TxtResolver, name: string): Promise<{ records: string[]; exists: boolean }> {
  try {
    return { records: (await resolver.resolveTxt(name)).map((chunks) => chunks.join('')), exists: true };
  } catch (error) {
    const code = (error as { code?: string }).code ?? '';
    if (code === 'ENODATA') return { records: [], exists: true };
    if (code === 'ENOTFOUND') return { records: [], exists: false };
    throw new DnsUnreachable(code || (error as Error).message);
  }
}

async function txt(resolver: TxtResolver, name: string): Promise<string[]> {
  return (await lookup(resolver, name)).records;
}

function unreachable(name: string, error: unknown): Check {
  if (!(error instanceof DnsUnreachable)) throw error;
  return {
    name,
    verdict: 'skip',
    detail: `DNS not reachable from here (${error.message}): cannot check`,
    fix: 'run the doctor where DNS answers, or name a resolver with --dns 1.1.1.1',
  };
}

/** The SPF record to start from: the SMTP provider's include is the operator's to fill in. */
export function spfSuggestion(domain: string): SuggestedRecord {
  return {
    name: domain,
    type: 'TXT',
    value: 'v=spf1 include:<your SMTP provider> -all',
    about: "SPF: the servers allowed to send as this domain (your provider's docs name its include:)",
  };
}

/** SPF at the sender's domain: exactly one v=spf1 record that ends by refusing everyone else. */
export async function checkSpf(resolver: TxtResolver, domain: string): Promise<Check> {
  const name = 'SPF';
  let found: { records: string[]; exists: boolean };
  try {
    found = await lookup(resolver, domain);
  } catch (error) {
    return unreachable(name, error);
  }
  if (!found.exists) {
    return {
      name,
      verdict: 'fail',
      detail: `${domain} does not exist in DNS (NXDOMAIN), so receivers refuse its mail`,
      fix: "check MAIL_FROM's domain; if it does exist, this host's resolver is not the public DNS: try --dns 1.1.1.1",
    };
  }
  const records = found.records.filter((r) => /^v=spf1(\s|$)/i.test(r.trim()));
  const suggestion = spfSuggestion(domain).value;
  if (records.length === 0) {
    return {
      name,
      verdict: 'fail',
      detail: `${domain} has no SPF record`,
      fix: `add TXT "${suggestion}" at ${domain}`,
    };
  }
  if (records.length > 1) {
    return {
      name,
      verdict: 'fail',
      detail: `${domain} has ${records.length} SPF records: receivers treat that as an error (permerror) and SPF fails`,
      fix: `merge them into one TXT record, e.g. "v=spf1 include:a include:b -all"; found: ${records.map((r) => `"${r}"`).join(', ')}`,
    };
  }
  const record = (records[0] ?? '').trim();
  const terms = record.split(/\s+/).slice(1);
  const all = terms.find((t) => /^[+?~-]?all$/i.test(t));
  const note = "whether it names your SMTP provider's servers can't be checked from here";
  if (all === 'all' || all === '+all') {
    return {
      name,
      verdict: 'warn',
      detail: `"${record}" allows every server in the world to send as ${domain}`,
      fix: 'end the record with -all (or ~all) instead of +all',
    };
  }
  if (all === '?all') {
    return {
      name,
      verdict: 'warn',
      detail: `"${record}" ends in ?all (neutral): it says nothing about other servers`,
      fix: 'end the record with -all (or ~all)',
    };
  }
  if (!all && !terms.some((t) => /^redirect=/i.test(t))) {
    return {
      name,
      verdict: 'warn',
      detail: `"${record}" has no "all" at the end: other servers get a neutral result`,
      fix: 'end the record with -all (or ~all)',
    };
  }
  return { name, verdict: 'ok', detail: `"${record}" (${note})` };
}

/** The DKIM public key of a PEM private key, as the p= and k= of its TXT record. */
export function dkimPublicKey(privateKey: string): { k: 'rsa' | 'ed25519'; p: string } {
  const key = createPublicKey(createPrivateKey(privateKey));
  const der = key.export({ type: 'spki', format: 'der' });
  // RFC 8463: an Ed25519 record holds the bare 32-byte key, not its SubjectPublicKeyInfo.
  if (key.asymmetricKeyType === 'ed25519') return { k: 'ed25519', p: der.subarray(-32).toString('base64') };
  return { k: 'rsa', p: der.toString('base64') };
}

/** The TXT record that publishes the key DKIM_PRIVATE_KEY signs with. */
export function dkimSuggestion(domain: string, selector: string, privateKey: string): SuggestedRecord {
  const { k, p } = dkimPublicKey(privateKey);
  return {
    name: `${selector}._domainkey.${domain}`,
    type: 'TXT',
    value: `v=DKIM1; k=${k}; p=${p}`,
    about: 'DKIM: the public half of DKIM_PRIVATE_KEY, which receivers verify signatures with',
  };
}

/** `a=1; b=2` → {a: '1', b: '2'} (tag names lower-cased, white space inside values removed). */
function tags(record: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const part of record.split(';')) {
    const at = part.indexOf('=');
    if (at < 0) continue;
    map.set(part.slice(0, at).trim().toLowerCase(), part.slice(at + 1).replace(/\s+/g, ''));
  }
  return map;
}

/** The published p= as the same kind of base64 dkimPublicKey gives (RSA keys published as PKCS#1 too). */
function normalisedKey(p: string, k: string): string | undefined {
  if (k === 'ed25519') return p;
  const der = Buffer.from(p, 'base64');
  for (const type of ['spki', 'pkcs1'] as const) {
    try {
      return createPublicKey({ key: der, format: 'der', type })
        .export({ type: 'spki', format: 'der' })
        .toString('base64');
    } catch {}
  }
  return undefined;
}

/** DKIM: the key published at `<selector>._domainkey.<domain>` is the one DKIM_PRIVATE_KEY signs with. */
export async function checkDkim(
  resolver: TxtResolver,
  dkim: { domain: string; selector: string; privateKey: string },
): Promise<Check> {
  const name = 'DKIM';
  const wanted = dkimSuggestion(dkim.domain, dkim.selector, dkim.privateKey);
  const publish = `publish TXT "${wanted.value}" at ${wanted.name}`;
  let records: string[];
  try {
    records = (await txt(resolver, wanted.name)).filter((r) => tags(r).has('p'));
  } catch (error) {
    return unreachable(name, error);
  }
  if (records.length === 0) {
    return { name, verdict: 'fail', detail: `no DKIM key published at ${wanted.name}`, fix: publish };
  }
  if (records.length > 1) {
    return {
      name,
      verdict: 'fail',
      detail: `${records.length} DKIM records at ${wanted.name}: receivers may pick either`,
      fix: `keep one: ${publish}`,
    };
  }
  const published = tags(records[0] ?? '');
  const p = published.get('p') ?? '';
  if (p === '') {
    return { name, verdict: 'fail', detail: `the key at ${wanted.name} is revoked (empty p=)`, fix: publish };
  }
  const { k, p: expected } = dkimPublicKey(dkim.privateKey);
  if ((published.get('k') ?? 'rsa').toLowerCase() !== k || normalisedKey(p, k) !== expected) {
    return {
      name,
      verdict: 'fail',
      detail: `the key published at ${wanted.name} is not the one DKIM_PRIVATE_KEY signs with: signatures fail`,
      fix: `${publish} (replacing the one there), or set DKIM_PRIVATE_KEY to the key it belongs to`,
    };
  }
  return { name, verdict: 'ok', detail: `the key at ${wanted.name} matches DKIM_PRIVATE_KEY` };
}

/** A DMARC record to start with: monitoring, with reports to an address at the domain. */
export function dmarcSuggestion(domain: string): SuggestedRecord {
  return {
    name: `_dmarc.${domain}`,
    type: 'TXT',
    value: `v=DMARC1; p=none; rua=mailto:dmarc-reports@${domain}`,
    about: 'DMARC: start with p=none and read the reports, then move to p=quarantine and p=reject',
  };
}

/**
 * DMARC at `_dmarc.<domain>`, else at the organizational domain's: its policy, whether reports are asked
 * for, and (given the DKIM signing domain) whether a strict alignment (adkim=s) lets the signature count.
 */
export async function checkDmarc(resolver: TxtResolver, domain: string, dkimDomain?: string): Promise<Check> {
  const name = 'DMARC';
  const org = organizationalDomain(domain);
  let found: { at: string; records: string[] } | undefined;
  try {
    for (const at of org === domain ? [domain] : [domain, org]) {
      const records = (await txt(resolver, `_dmarc.${at}`)).filter((r) =>
        /^v=DMARC1\s*(;|$)/i.test(r.trim()),
      );
      if (records.length > 0) {
        found = { at, records };
        break;
      }
    }
  } catch (error) {
    return unreachable(name, error);
  }
  const suggestion = dmarcSuggestion(org);
  if (!found) {
    return {
      name,
      verdict: 'fail',
      detail: `no DMARC record at _dmarc.${domain}${org === domain ? '' : ` or _dmarc.${org}`}: Gmail and Yahoo require one of bulk senders`,
      fix: `add TXT "${suggestion.value}" at ${suggestion.name}`,
    };
  }
  const where = `_dmarc.${found.at}`;
  if (found.records.length > 1) {
    return {
      name,
      verdict: 'fail',
      detail: `${found.records.length} DMARC records at ${where}: receivers ignore them all`,
      fix: 'keep exactly one',
    };
  }
  const record = tags(found.records[0] ?? '');
  const policy = (
    found.at === domain ? record.get('p') : (record.get('sp') ?? record.get('p'))
  )?.toLowerCase();
  const reports = record.get('rua')
    ? `aggregate reports go to ${record.get('rua')}`
    : 'no rua=: nobody receives the aggregate reports';
  const inherited = found.at === domain ? '' : ` (inherited from ${where})`;
  if (record.get('adkim')?.toLowerCase() === 's' && dkimDomain && dkimDomain.toLowerCase() !== domain) {
    return {
      name,
      verdict: 'fail',
      detail: `adkim=s (strict) at ${where}: only a signature by ${domain} itself counts, and DKIM_DOMAIN is ${dkimDomain}`,
      fix: `set DKIM_DOMAIN=${domain} and publish the key there, or remove adkim=s (relaxed is the default)`,
    };
  }
  if (policy === 'reject' || policy === 'quarantine') {
    return { name, verdict: 'ok', detail: `p=${policy}${inherited}; ${reports}` };
  }
  if (policy === 'none') {
    return {
      name,
      verdict: 'warn',
      detail: `p=none${inherited}: monitoring only, receivers are not asked to act on failures; ${reports}`,
      fix: 'once the reports show your letters pass, move to p=quarantine, then p=reject',
    };
  }
  return {
    name,
    verdict: 'fail',
    detail: `the record at ${where} has no valid p= policy: receivers ignore it`,
    fix: `start with "${suggestion.value}"`,
  };
}
