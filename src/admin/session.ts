import type { Context } from 'hono';
import { deleteCookie, generateSignedCookie, getSignedCookie, setSignedCookie } from 'hono/cookie';
import { timingSafeEqual } from 'hono/utils/buffer';
import type { CookieOptions } from 'hono/utils/cookie';
import type { AppEnv } from '../deps.js';
import { overHttps } from '../http/same-origin.js';

/**
 * The dashboard's sessions: nothing is stored server-side. The session cookie holds an expiry and the
 * session's CSRF token, signed by hono (HMAC-SHA-256 on WebCrypto, so it runs on Workers as on Node); each
 * form carries the token too, and a post counts only when both agree (double submit, signed: a cookie
 * can't be made up, so neither can the token it holds).
 */

/** The session cookie: only ever sent to /admin, never to scripts, never cross-site. */
export const SESSION_COOKIE = 'oneletter_admin';
/** Before sign-in: a signed random nonce, which the sign-in form carries as its CSRF token. */
export const SIGNIN_COOKIE = 'oneletter_admin_signin';
const COOKIE_PATH = '/admin';

export interface AdminSession {
  /** The CSRF token of the session's forms: random, 128 bits. */
  csrf: string;
  /** Milliseconds since the epoch. */
  expiresAt: number;
}

const TOKEN = /^[A-Za-z0-9_-]{22}$/;
const SESSION_VALUE = /^(\d{1,15})\.([A-Za-z0-9_-]{22})$/;

/** The key cookies are signed with, derived from the secret: a cookie's signature is never a token's. */
async function signingKey(secret: string): Promise<ArrayBuffer> {
  return crypto.subtle.digest('SHA-256', new TextEncoder().encode(`oneletter admin session\n${secret}`));
}

/** A new random token: 128 bits, URL-safe. */
function randomToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return btoa(String.fromCharCode(...bytes))
    .replace(/\+/g, '-')
    .replace(/\//g, '_')
    .replace(/=+$/, '');
}

/**
 * `Secure` when the browser talks to us over https. Over plain http (http://<server-ip>) browsers drop a
 * Secure cookie, and the flag would protect nothing: the token and the cookie cross that connection in clear.
 */
function cookieOptions(c: Context<AppEnv>): CookieOptions {
  return { path: COOKIE_PATH, secure: overHttps(c), httpOnly: true, sameSite: 'Strict' };
}

/** The cookie value of a session as a Cookie header carries it. Exported so tests can make expired ones. */
export async function sessionCookieValue(secret: string, session: AdminSession): Promise<string> {
  const cookie = await generateSignedCookie(
    SESSION_COOKIE,
    `${session.expiresAt}.${session.csrf}`,
    await signingKey(secret),
  );
  return cookie.slice(SESSION_COOKIE.length + 1, cookie.indexOf(';'));
}

/** Starts a session: sets its cookie, valid for `lifetimeMs`. */
export async function startSession(
  c: Context<AppEnv>,
  secret: string,
  lifetimeMs: number,
): Promise<AdminSession> {
  const session = { csrf: randomToken(), expiresAt: Date.now() + lifetimeMs };
  await setSignedCookie(c, SESSION_COOKIE, `${session.expiresAt}.${session.csrf}`, await signingKey(secret), {
    ...cookieOptions(c),
    maxAge: Math.floor(lifetimeMs / 1000),
  });
  return session;
}

/** The request's session, when its cookie is signed by us and has not expired. */
export async function currentSession(c: Context, secret: string): Promise<AdminSession | undefined> {
  const value = await getSignedCookie(c, await signingKey(secret), SESSION_COOKIE);
  const match = SESSION_VALUE.exec(value || '');
  if (!match) return undefined;
  const expiresAt = Number(match[1]);
  if (expiresAt <= Date.now()) return undefined;
  return { csrf: match[2] as string, expiresAt };
}

export function endSession(c: Context<AppEnv>): void {
  deleteCookie(c, SESSION_COOKIE, cookieOptions(c));
}

/** Whether a form's CSRF token is the session's (or the sign-in nonce's): constant time. */
export async function checkToken(expected: string, given: string | undefined): Promise<boolean> {
  return given !== undefined && (await timingSafeEqual(expected, given));
}

/** The sign-in form's CSRF token: the nonce of the sign-in cookie, making one when the request has none. */
export async function signInNonce(c: Context<AppEnv>, secret: string): Promise<string> {
  const existing = await readSignInNonce(c, secret);
  if (existing) return existing;
  const nonce = randomToken();
  await setSignedCookie(c, SIGNIN_COOKIE, nonce, await signingKey(secret), {
    ...cookieOptions(c),
    maxAge: 3600,
  });
  return nonce;
}

/** The nonce of the request's sign-in cookie, when it is signed by us. */
export async function readSignInNonce(c: Context, secret: string): Promise<string | undefined> {
  const nonce = await getSignedCookie(c, await signingKey(secret), SIGNIN_COOKIE);
  return nonce && TOKEN.test(nonce) ? nonce : undefined;
}

export function clearSignInNonce(c: Context<AppEnv>): void {
  deleteCookie(c, SIGNIN_COOKIE, cookieOptions(c));
}
