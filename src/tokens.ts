import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** 256 random bits, URL-safe: 43 characters. */
export function newToken(): string {
  return randomBytes(32).toString('base64url');
}

/**
 * `count` tokens as newToken() makes them, from one draw of random bytes: a draw costs ~5 µs however few
 * bytes it takes, and a batch of subscriptions needs a token for each new address.
 */
export function newTokens(count: number): string[] {
  const bytes = randomBytes(32 * count);
  const tokens: string[] = [];
  for (let i = 0; i < count; i++) tokens.push(bytes.toString('base64url', i * 32, i * 32 + 32));
  return tokens;
}

/** Tokens are stored as SHA-256 hashes where the raw value is not needed again. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}

/** Rejects anything that is not shaped like one of our tokens before the database is asked. */
export function isTokenShape(token: string): boolean {
  return /^[A-Za-z0-9_-]{43}$/.test(token);
}

/** Compares two secrets in time that does not depend on where they differ. */
export function safeEqual(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}
