import type { webcrypto } from 'node:crypto';
import type { Context } from 'hono';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';

/**
 * The dashboard's sessions: nothing is stored server-side. The cookie holds an expiry and a random id,
 * signed with HMAC-SHA-256 (WebCrypto, so it runs on Workers as on Node); the CSRF token of every form is
 * the same key's HMAC of the session id, so it is tied to the session and needs no storage either.
 */

/** The session cookie: only ever sent to /admin, only over HTTPS, never to scripts, never cross-site. */
export const SESSION_COOKIE = 'oneletter_admin';
/** Before sign-in: a random nonce whose HMAC is the sign-in form's CSRF token (double submit, signed). */
export const SIGNIN_COOKIE = 'oneletter_admin_signin';
export const COOKIE_PATH = '/admin';

export interface AdminSession {
  id: string;
  /** Milliseconds since the epoch. */
  expiresAt: number;
}

const encoder = new TextEncoder();

async function hmacKey(secret: string): Promise<webcrypto.CryptoKey> {
  // A key of its own for the dashboard, derived from the secret: a session signature is never a token.
  const material = await crypto.subtle.digest(
    'SHA-256',
    encoder.encode(`oneletter admin session\n${secret}`),
  );
  return crypto.subtle.importKey('raw', material, { name: 'HMAC', hash: 'SHA-256' }, false, [
    'sign',
    'verify',
  ]);
}

function toBase64Url(bytes: Uint8Array): string {
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function fromBase64Url(text: string): Uint8Array | undefined {
  if (!/^[A-Za-z0-9_-]{1,200}$/.test(text)) return undefined;
  try {
    const binary = atob(text.replace(/-/g, '+').replace(/_/g, '/'));
    return Uint8Array.from(binary, (ch) => ch.charCodeAt(0));
  } catch {
    return undefined;
  }
}

async function sign(secret: string, message: string): Promise<string> {
  const signature = await crypto.subtle.sign('HMAC', await hmacKey(secret), encoder.encode(message));
  return toBase64Url(new Uint8Array(signature));
}

/** Checks a signature in constant time (WebCrypto's verify). */
async function verify(secret: string, message: string, signature: string): Promise<boolean> {
  const bytes = fromBase64Url(signature);
  if (bytes?.length !== 32) return false;
  return crypto.subtle.verify('HMAC', await hmacKey(secret), bytes, encoder.encode(message));
}

/** A new random id: 128 bits, URL-safe. */
export function randomId(): string {
  return toBase64Url(crypto.getRandomValues(new Uint8Array(16)));
}

/** The cookie value of a session: `<expiry ms>.<id>.<signature>`. Exported so tests can make expired ones. */
export async function sessionCookieValue(secret: string, session: AdminSession): Promise<string> {
  const payload = `${session.expiresAt}.${session.id}`;
  return `${payload}.${await sign(secret, `session.${payload}`)}`;
}

/** The session a cookie value names, when its signature is ours and it has not expired. */
export async function readSessionValue(
  secret: string,
  value: string | undefined,
  now = Date.now(),
): Promise<AdminSession | undefined> {
  const match = /^(\d{1,15})\.([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{43})$/.exec(value ?? '');
  if (!match) return undefined;
  const [, expiry, id, signature] = match as unknown as [string, string, string, string];
  if (!(await verify(secret, `session.${expiry}.${id}`, signature))) return undefined;
  const expiresAt = Number(expiry);
  if (expiresAt <= now) return undefined;
  return { id, expiresAt };
}

/** The CSRF token of a session's forms. */
export function csrfToken(secret: string, sessionId: string): Promise<string> {
  return sign(secret, `csrf.${sessionId}`);
}

/** Whether a form's CSRF token belongs to the session. */
export function checkCsrfToken(
  secret: string,
  sessionId: string,
  token: string | undefined,
): Promise<boolean> {
  return token ? verify(secret, `csrf.${sessionId}`, token) : Promise.resolve(false);
}

/** The sign-in form's CSRF token, tied to the nonce in the sign-in cookie. */
export function signInToken(secret: string, nonce: string): Promise<string> {
  return sign(secret, `sign-in.${nonce}`);
}

export function checkSignInToken(secret: string, nonce: string, token: string | undefined): Promise<boolean> {
  return token ? verify(secret, `sign-in.${nonce}`, token) : Promise.resolve(false);
}

const cookieOptions = {
  path: COOKIE_PATH,
  secure: true,
  httpOnly: true,
  sameSite: 'Strict',
} as const;

/** Starts a session: sets its cookie, valid for `lifetimeMs`. */
export async function startSession(c: Context, secret: string, lifetimeMs: number): Promise<AdminSession> {
  const session = { id: randomId(), expiresAt: Date.now() + lifetimeMs };
  setCookie(c, SESSION_COOKIE, await sessionCookieValue(secret, session), {
    ...cookieOptions,
    maxAge: Math.floor(lifetimeMs / 1000),
  });
  return session;
}

/** The request's session, if it carries a valid one. */
export function currentSession(c: Context, secret: string): Promise<AdminSession | undefined> {
  return readSessionValue(secret, getCookie(c, SESSION_COOKIE));
}

export function endSession(c: Context): void {
  deleteCookie(c, SESSION_COOKIE, cookieOptions);
}

/** The sign-in cookie's nonce, making one (and setting the cookie) when the request has none. */
export function signInNonce(c: Context): string {
  const existing = getCookie(c, SIGNIN_COOKIE);
  if (existing && /^[A-Za-z0-9_-]{22}$/.test(existing)) return existing;
  const nonce = randomId();
  setCookie(c, SIGNIN_COOKIE, nonce, { ...cookieOptions, maxAge: 3600 });
  return nonce;
}

export function readSignInNonce(c: Context): string | undefined {
  const nonce = getCookie(c, SIGNIN_COOKIE);
  return nonce && /^[A-Za-z0-9_-]{22}$/.test(nonce) ? nonce : undefined;
}

export function clearSignInNonce(c: Context): void {
  deleteCookie(c, SIGNIN_COOKIE, cookieOptions);
}
