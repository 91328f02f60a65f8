/** ok: nothing to do; warn: works, but mail may suffer; fail: must be fixed; skip: could not be checked here. */
export type Verdict = 'ok' | 'warn' | 'fail' | 'skip';

/** One line of the doctor's report: what was checked, the verdict, what was found, and what to do. */
export interface Check {
  name: string;
  verdict: Verdict;
  detail: string;
  fix?: string;
}

/** A DNS record the operator should publish (or compare with what is published). */
export interface SuggestedRecord {
  name: string;
  type: 'TXT';
  value: string;
  /** What the record is for, in a few words. */
  about: string;
}

/** The domain of an address in MAIL_FROM (`Essays <essays@example.com>` → `example.com`), lower-cased. */
export function domainOf(mailFrom: string): string {
  const address = /<([^<>]+)>/.exec(mailFrom)?.[1] ?? mailFrom;
  return address
    .slice(address.lastIndexOf('@') + 1)
    .trim()
    .toLowerCase();
}

/** Second-level labels under which registrations happen in many country domains (co.uk, com.au…). */
const SECOND_LEVEL = new Set(['co', 'com', 'net', 'org', 'gov', 'ac', 'edu', 'ne', 'or', 'go']);

/**
 * The organizational domain, naïvely: the last two labels, or three under a two-letter country domain
 * with a common second level (`news.example.co.uk` → `example.co.uk`). DMARC uses the Public Suffix List,
 * which this does not carry; it is right for the usual cases and says so where it decides.
 */
export function organizationalDomain(domain: string): string {
  const labels = domain.toLowerCase().split('.').filter(Boolean);
  const last = labels.at(-1) ?? '';
  const second = labels.at(-2) ?? '';
  const keep = last.length === 2 && SECOND_LEVEL.has(second) ? 3 : 2;
  return labels.slice(-keep).join('.');
}

/** DMARC's relaxed alignment: both domains have the same organizational domain. */
export function aligned(a: string, b: string): boolean {
  return organizationalDomain(a) === organizationalDomain(b);
}
