import { disposableEmailBlocklistSet } from 'disposable-email-domains-js';

/** The throwaway domains (disposable-email-domains-js, updated with the lockfile), read once when first needed. */
let domains: Set<string> | undefined;

/** True when the address's domain, or a domain above it (a.b.mailinator.com), is a throwaway one. */
export function isDisposableAddress(email: string): boolean {
  domains ??= disposableEmailBlocklistSet();
  const labels = email
    .slice(email.lastIndexOf('@') + 1)
    .toLowerCase()
    .split('.');
  for (let i = 0; i < labels.length - 1; i++) {
    if (domains.has(labels.slice(i).join('.'))) return true;
  }
  return false;
}
