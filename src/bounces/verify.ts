/**
 * The signature checks of provider webhooks, with WebCrypto only (Node and Workers alike). Every comparison
 * of a secret-derived value is constant-time; every scheme with a timestamp refuses one more than
 * TOLERANCE_SECONDS away from our clock, so a captured request can't be replayed later.
 */

/** How far a signed timestamp may be from our clock, either way (Svix, Stripe and most providers say 5 min). */
export const TOLERANCE_SECONDS = 5 * 60;

const encoder = new TextEncoder();

export type Bytes = Uint8Array<ArrayBuffer>;

export const utf8 = (s: string): Bytes => encoder.encode(s) as Bytes;

/** HMAC-SHA256 of `data` with `key`. */
export async function hmacSha256(key: Bytes, data: Bytes): Promise<Bytes> {
  const k = await crypto.subtle.importKey('raw', key, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  return new Uint8Array(await crypto.subtle.sign('HMAC', k, data));
}

export async function sha256Hex(data: string): Promise<string> {
  return toHex(new Uint8Array(await crypto.subtle.digest('SHA-256', utf8(data))));
}

/** Equal bytes, compared in time that depends only on the lengths. */
export function timingSafeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= (a[i] as number) ^ (b[i] as number);
  return diff === 0;
}

export function toHex(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) out += b.toString(16).padStart(2, '0');
  return out;
}

export function fromHex(s: string): Bytes | undefined {
  if (s.length % 2 !== 0 || !/^[0-9a-f]*$/i.test(s)) return undefined;
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(s.slice(i * 2, i * 2 + 2), 16);
  return out;
}

export function toBase64(bytes: Uint8Array): string {
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

export function fromBase64(s: string): Bytes | undefined {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 !== 0) return undefined;
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** A unix time in seconds (digits only) within TOLERANCE_SECONDS of `nowMs`. */
export function freshTimestamp(raw: string | undefined, nowMs: number): boolean {
  if (!raw || !/^\d{1,12}$/.test(raw)) return false;
  return Math.abs(nowMs / 1000 - Number(raw)) <= TOLERANCE_SECONDS;
}

/**
 * Svix (Resend's webhooks): `svix-signature` lists `v1,<base64 HMAC-SHA256>` entries, separated by spaces,
 * over `svix-id.svix-timestamp.body`, keyed with the base64 part of the `whsec_` secret. One matching entry
 * is enough (several are sent while a secret is being rotated).
 */
export async function verifySvix(
  secret: string,
  headers: { id?: string; timestamp?: string; signature?: string },
  body: string,
  nowMs: number,
): Promise<string | undefined> {
  const { id, timestamp, signature } = headers;
  if (!id || !timestamp || !signature) return 'svix-id, svix-timestamp and svix-signature are required';
  if (!freshTimestamp(timestamp, nowMs)) return 'svix-timestamp is not within 5 minutes of now';
  const key = fromBase64(secret.replace(/^whsec_/, ''));
  if (!key) return 'the secret is not a whsec_ secret';
  const expected = await hmacSha256(key, utf8(`${id}.${timestamp}.${body}`));
  let ok = false;
  for (const entry of signature.split(' ')) {
    const [version, value] = entry.split(',', 2);
    const given = version === 'v1' && value ? fromBase64(value) : undefined;
    if (given && timingSafeEqual(given, expected)) ok = true;
  }
  return ok ? undefined : 'no v1 signature in svix-signature matches the body';
}

/** An ECDSA signature as DER (ASN.1 SEQUENCE of two INTEGERs) turned into r‖s, the form WebCrypto verifies. */
export function derToP1363(der: Uint8Array, size = 32): Bytes | undefined {
  if (der[0] !== 0x30) return undefined;
  let at = 2;
  if ((der[1] as number) & 0x80) at = 2 + ((der[1] as number) & 0x7f);
  const out = new Uint8Array(size * 2);
  for (let part = 0; part < 2; part++) {
    if (der[at] !== 0x02) return undefined;
    const length = der[at + 1] as number;
    let value = der.subarray(at + 2, at + 2 + length);
    if (value.length !== length) return undefined;
    while (value.length > size && value[0] === 0) value = value.subarray(1);
    if (value.length > size) return undefined;
    out.set(value, part * size + size - value.length);
    at += 2 + length;
  }
  return at === der.length ? out : undefined;
}

/**
 * SendGrid's Signed Event Webhook: ECDSA P-256 with SHA-256 over `timestamp + body`, the signature base64 DER
 * in X-Twilio-Email-Event-Webhook-Signature, the key the base64 SubjectPublicKeyInfo SendGrid shows.
 */
export async function verifySendGrid(
  publicKey: string,
  headers: { signature?: string; timestamp?: string },
  body: string,
  nowMs: number,
): Promise<string | undefined> {
  const { signature, timestamp } = headers;
  if (!signature || !timestamp) {
    return 'X-Twilio-Email-Event-Webhook-Signature and X-Twilio-Email-Event-Webhook-Timestamp are required';
  }
  if (!freshTimestamp(timestamp, nowMs)) {
    return 'X-Twilio-Email-Event-Webhook-Timestamp is not within 5 minutes of now';
  }
  const der = fromBase64(signature);
  const raw = der && derToP1363(der);
  if (!raw) return 'the signature is not a base64 DER ECDSA signature';
  const spki = fromBase64(publicKey);
  if (!spki) return 'SENDGRID_WEBHOOK_PUBLIC_KEY is not base64';
  let key: Awaited<ReturnType<typeof crypto.subtle.importKey>>;
  try {
    key = await crypto.subtle.importKey('spki', spki, { name: 'ECDSA', namedCurve: 'P-256' }, false, [
      'verify',
    ]);
  } catch {
    return 'SENDGRID_WEBHOOK_PUBLIC_KEY is not a P-256 public key';
  }
  const ok = await crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, key, raw, utf8(timestamp + body));
  return ok ? undefined : 'the signature does not match the body';
}

/** Mailgun: hex HMAC-SHA256 of `timestamp + token`, keyed with the webhook signing key. */
export async function verifyMailgun(
  signingKey: string,
  signature: { timestamp?: unknown; token?: unknown; signature?: unknown },
  nowMs: number,
): Promise<string | undefined> {
  const timestamp =
    typeof signature.timestamp === 'number' ? String(signature.timestamp) : signature.timestamp;
  const { token } = signature;
  if (typeof timestamp !== 'string' || typeof token !== 'string' || typeof signature.signature !== 'string') {
    return 'signature.timestamp, signature.token and signature.signature are required';
  }
  if (!freshTimestamp(timestamp, nowMs)) return 'signature.timestamp is not within 5 minutes of now';
  const given = fromHex(signature.signature);
  const expected = await hmacSha256(utf8(signingKey), utf8(timestamp + token));
  return given && timingSafeEqual(given, expected) ? undefined : 'the signature does not match';
}

/** The generic scheme: `X-Signature-256: sha256=<hex HMAC-SHA256 of "timestamp.body">`, X-Timestamp in seconds. */
export async function verifyGeneric(
  secret: string,
  headers: { signature?: string; timestamp?: string },
  body: string,
  nowMs: number,
): Promise<string | undefined> {
  const { signature, timestamp } = headers;
  if (!signature || !timestamp) return 'X-Signature-256 and X-Timestamp are required';
  if (!freshTimestamp(timestamp, nowMs)) return 'X-Timestamp is not within 5 minutes of now';
  const given = signature.startsWith('sha256=') ? fromHex(signature.slice(7)) : undefined;
  const expected = await hmacSha256(utf8(secret), utf8(`${timestamp}.${body}`));
  return given && timingSafeEqual(given, expected) ? undefined : 'X-Signature-256 does not match the body';
}

/** HTTP Basic credentials (Postmark puts them in the webhook URL), compared in constant time. */
export async function verifyBasic(
  authorization: string | undefined,
  user: string,
  password: string,
): Promise<string | undefined> {
  const match = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(authorization ?? '');
  const decoded = match?.[1] && fromBase64(match[1]);
  if (!decoded) return 'HTTP Basic credentials are required';
  // Hashing both sides first makes the comparison's time independent of where they differ and of lengths.
  const [given, wanted] = await Promise.all([
    crypto.subtle.digest('SHA-256', decoded),
    crypto.subtle.digest('SHA-256', utf8(`${user}:${password}`)),
  ]);
  return timingSafeEqual(new Uint8Array(given), new Uint8Array(wanted))
    ? undefined
    : 'the credentials are not POSTMARK_WEBHOOK_USER and POSTMARK_WEBHOOK_PASSWORD';
}
