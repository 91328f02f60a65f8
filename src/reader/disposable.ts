/**
 * The throwaway domains (disposable-email-domains-js, updated with the lockfile), loaded once when first
 * needed: only with BLOCK_DISPOSABLE_DOMAINS.
 */
let domains: Set<string> | undefined;

/** True when the address's domain, or a domain above it (a.b.mailinator.com), is a throwaway one. */
export async function isDisposableAddress(email: string): Promise<boolean> {
  domains ??= (await import('disposable-email-domains-js')).disposableEmailBlocklistSet();
  const labels = email
    .slice(email.lastIndexOf('@') + 1)
    .toLowerCase()
    .split('.');
  for (let i = 0; i < labels.length - 1; i++) {
    if (domains.has(labels.slice(i).join('.'))) return true;
  }
  return false;
}
