import { createHash } from 'node:crypto';

/**
 * The essay slug of a feed entry, from its stable id alone: a readable part (the id's last path segment)
 * and 12 hex digits of its SHA-256. The same id gives the same slug in any feed, at any time, so the
 * idempotent publish can't send it twice; a different id gives a different slug.
 */
export function entrySlug(entryId: string): string {
  const hash = sha256Hex(entryId).slice(0, 12);
  const readable = readablePart(entryId);
  return readable ? `${readable}-${hash}` : `entry-${hash}`;
}

export function sha256Hex(value: string): string {
  return createHash('sha256').update(value).digest('hex');
}

/** "https://example.com/essays/on-walking/" → "on-walking"; "urn:uuid:1225c695-…" → "1225c695-…". */
function readablePart(id: string): string {
  const segments = id
    .replace(/^[a-z][a-z0-9+.-]*:(\/\/[^/]*)?/i, '')
    .split(/[/?#&=:,]+/)
    .map((s) => slugify(s.replace(/\.(html?|php|aspx?|xml)$/i, '')))
    .filter(Boolean);
  return segments.at(-1) ?? '';
}

function slugify(value: string): string {
  return value
    .normalize('NFKD')
    .replace(/\p{M}+/gu, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 60)
    .replace(/-+$/, '');
}
