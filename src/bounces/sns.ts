import { AppError } from '../http/errors.js';

/**
 * Amazon SNS HTTP(S) messages: reading them and checking that Amazon signed them, as AWS documents
 * (https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html). WebCrypto only, so the
 * same code runs on Node and on Workers; the certificate's public key is found with a small DER walk.
 */

export type SnsMessageType = 'Notification' | 'SubscriptionConfirmation' | 'UnsubscribeConfirmation';

export interface SnsMessage {
  Type: SnsMessageType;
  MessageId: string;
  TopicArn: string;
  Message: string;
  Timestamp: string;
  SignatureVersion: string;
  Signature: string;
  SigningCertURL: string;
  Subject?: string;
  SubscribeURL?: string;
  Token?: string;
  UnsubscribeURL?: string;
}

const TYPES: readonly string[] = ['Notification', 'SubscriptionConfirmation', 'UnsubscribeConfirmation'];

/** The fields in the string Amazon signs, in its order; absent optional ones are left out. */
const SIGNED_FIELDS: Record<SnsMessageType, (keyof SnsMessage)[]> = {
  Notification: ['Message', 'MessageId', 'Subject', 'Timestamp', 'TopicArn', 'Type'],
  SubscriptionConfirmation: [
    'Message',
    'MessageId',
    'SubscribeURL',
    'Timestamp',
    'Token',
    'TopicArn',
    'Type',
  ],
  UnsubscribeConfirmation: ['Message', 'MessageId', 'SubscribeURL', 'Timestamp', 'Token', 'TopicArn', 'Type'],
};

/** SignatureVersion 1 is SHA1withRSA, 2 is SHA256withRSA. */
const HASHES: Record<string, 'SHA-1' | 'SHA-256'> = { '1': 'SHA-1', '2': 'SHA-256' };

/** The hosts Amazon serves signing certificates and subscription links from (as AWS's own validators check). */
export const AWS_SNS_HOST = /^sns\.[a-z0-9-]{3,}\.amazonaws\.com(?:\.cn)?$/;

/** How old a message may be: SNS retries a delivery for at most an hour, so anything older is a replay. */
export const MAX_AGE_MS = 60 * 60 * 1000;
/** How far ahead of our clock a message may be dated (clock skew). */
const MAX_SKEW_MS = 5 * 60 * 1000;

const CERT_FETCH_TIMEOUT_MS = 5_000;
const CERT_MAX_BYTES = 16 * 1024;
/** Certificate URLs kept at once: every region a sender uses, with room for Amazon's certificate changes. */
const CERT_CACHE_SIZE = 32;
/** How long a fetched certificate is trusted before it is fetched again (Amazon may withdraw or replace one). */
export const CERT_CACHE_TTL_MS = 60 * 60 * 1000;

type PublicKey = Awaited<ReturnType<typeof crypto.subtle.importKey>>;

const rejected = (message: string) => new AppError('signature_invalid', message);

/** Reads an SNS message from a request body; throws malformed_json or bad_request. */
export function parseSnsMessage(body: string, headerType: string | undefined): SnsMessage {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    throw new AppError(
      'malformed_json',
      'The body is not JSON. This endpoint takes Amazon SNS HTTP(S) messages; turn raw message delivery off.',
    );
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new AppError('bad_request', 'The body is not an Amazon SNS message (expected a JSON object).');
  }
  const m = value as Record<string, unknown>;
  if (typeof m.Type !== 'string' || !TYPES.includes(m.Type)) {
    throw new AppError(
      'bad_request',
      `Unknown SNS message type ${JSON.stringify(String(m.Type ?? '')).slice(0, 60)}: expected Notification, SubscriptionConfirmation or UnsubscribeConfirmation.`,
    );
  }
  if (headerType !== undefined && headerType !== m.Type) {
    throw new AppError(
      'bad_request',
      'The x-amz-sns-message-type header and the message Type disagree: this is not a message as SNS sends it.',
    );
  }
  const type = m.Type as SnsMessageType;
  const required: (keyof SnsMessage)[] = [
    'MessageId',
    'TopicArn',
    'Message',
    'Timestamp',
    'SignatureVersion',
    'Signature',
    'SigningCertURL',
  ];
  if (type !== 'Notification') required.push('SubscribeURL', 'Token');
  const missing = required.filter((k) => typeof m[k] !== 'string');
  if (missing.length) {
    throw new AppError('bad_request', `The SNS message lacks ${missing.join(', ')}.`);
  }
  for (const k of ['Subject', 'UnsubscribeURL'] as const) {
    if (m[k] !== undefined && m[k] !== null && typeof m[k] !== 'string') {
      throw new AppError('bad_request', `The SNS message's ${k} is not a string.`);
    }
  }
  return m as unknown as SnsMessage;
}

/** The string Amazon signed: each field's name and value on lines of their own, in Amazon's order. */
export function canonicalString(m: SnsMessage): string {
  let out = '';
  for (const field of SIGNED_FIELDS[m.Type]) {
    const value = m[field];
    if (typeof value !== 'string') continue;
    out += `${field}\n${value}\n`;
  }
  return out;
}

/** True for an https:// address on Amazon's SNS hosts (no credentials, no other port). */
export function isAwsSnsUrl(raw: string): boolean {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return false;
  }
  return (
    url.protocol === 'https:' &&
    url.username === '' &&
    url.password === '' &&
    url.port === '' &&
    AWS_SNS_HOST.test(url.hostname)
  );
}

type Spki = Uint8Array<ArrayBuffer>;

/** Signing certificates' public keys by certificate URL: bounded in size, each kept for a limited time. */
export interface CertificateCache {
  /** The cached key for `url`, or what `load` gives (kept unless it fails: the next message loads again). */
  get(url: string, now: number, load: () => Promise<Spki>): Promise<Spki>;
}

/** A cache that keeps the `size` most recently used certificates, each for `ttlMs` after it was fetched. */
export function createCertificateCache(size = CERT_CACHE_SIZE, ttlMs = CERT_CACHE_TTL_MS): CertificateCache {
  // A Map iterates in insertion order: re-inserting on use keeps the least recently used first.
  const entries = new Map<string, { spki: Promise<Spki>; expires: number }>();
  return {
    get(url, now, load) {
      const cached = entries.get(url);
      entries.delete(url);
      if (cached && cached.expires > now) {
        entries.set(url, cached);
        return cached.spki;
      }
      const entry = { spki: load(), expires: now + ttlMs };
      entry.spki.catch(() => {
        if (entries.get(url) === entry) entries.delete(url);
      });
      if (entries.size >= size) entries.delete(entries.keys().next().value as string);
      entries.set(url, entry);
      return entry.spki;
    },
  };
}

/**
 * One cache for the whole process (Node) or isolate (Workers). On Workers the app, and so the verifier, is
 * built for every request: a cache of the verifier's own would fetch the certificate for every message.
 * Only URLs that passed the host check reach it; a failed fetch or a PEM that holds no certificate is not kept.
 */
const sharedCertificates = createCertificateCache();

export interface SnsVerifierOptions {
  /** Fetches signing certificates (tests serve their own; production fetches Amazon's). */
  fetch: typeof fetch;
  now?: () => number;
  /** Where fetched certificates are kept; by default one cache shared by every verifier in this process. */
  certificates?: CertificateCache;
}

/**
 * Checks SNS messages: a signing certificate on Amazon's SNS hosts, a signature by that certificate's key over
 * the canonical string, and a recent timestamp. Certificates are kept in memory by URL (CertificateCache).
 */
export function createSnsVerifier(options: SnsVerifierOptions): (m: SnsMessage) => Promise<void> {
  const now = options.now ?? Date.now;
  const certificates = options.certificates ?? sharedCertificates;

  const keyFor = async (url: string, hash: 'SHA-1' | 'SHA-256'): Promise<PublicKey> => {
    const spki = await certificates.get(url, now(), () => fetchCertificate(options.fetch, url));
    try {
      return await crypto.subtle.importKey('spki', spki, { name: 'RSASSA-PKCS1-v1_5', hash }, false, [
        'verify',
      ]);
    } catch {
      throw rejected('The signing certificate does not hold an RSA public key.');
    }
  };

  return async (m) => {
    const hash = HASHES[m.SignatureVersion];
    if (!hash) {
      throw rejected(
        `SignatureVersion ${JSON.stringify(m.SignatureVersion).slice(0, 20)} is not one SNS uses (1 or 2).`,
      );
    }
    if (!isAwsSnsUrl(m.SigningCertURL) || !new URL(m.SigningCertURL).pathname.endsWith('.pem')) {
      throw rejected('SigningCertURL is not an https:// certificate address on an Amazon SNS host.');
    }
    const at = Date.parse(m.Timestamp);
    if (Number.isNaN(at)) throw rejected('The message Timestamp is not a date.');
    if (now() - at > MAX_AGE_MS) throw rejected('The message is more than an hour old: not accepted again.');
    if (at - now() > MAX_SKEW_MS) throw rejected('The message is dated in the future.');
    const signature = decodeBase64(m.Signature);
    if (!signature) throw rejected('The Signature is not base64.');
    const key = await keyFor(m.SigningCertURL, hash);
    const ok = await crypto.subtle.verify(
      'RSASSA-PKCS1-v1_5',
      key,
      signature,
      new TextEncoder().encode(canonicalString(m)),
    );
    if (!ok) throw rejected('The signature does not match the message: it was not signed by Amazon SNS.');
  };
}

/** GETs a PEM certificate (bounded in time and size) and returns its SubjectPublicKeyInfo. */
async function fetchCertificate(fetchFn: typeof fetch, url: string): Promise<Spki> {
  let res: Response;
  try {
    res = await fetchFn(url, { redirect: 'manual', signal: AbortSignal.timeout(CERT_FETCH_TIMEOUT_MS) });
  } catch {
    throw new AppError(
      'certificate_unavailable',
      'The SNS signing certificate could not be fetched right now; SNS will retry.',
    );
  }
  if (res.status >= 500) {
    await res.body?.cancel();
    throw new AppError(
      'certificate_unavailable',
      `Amazon answered ${res.status} for the SNS signing certificate; SNS will retry.`,
    );
  }
  if (res.status !== 200) {
    await res.body?.cancel();
    throw rejected(`There is no signing certificate at SigningCertURL (Amazon answered ${res.status}).`);
  }
  const text = await readText(res, CERT_MAX_BYTES);
  const pem = text && /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+)-----END CERTIFICATE-----/.exec(text);
  const der = pem?.[1] ? decodeBase64(pem[1].replace(/\s+/g, '')) : undefined;
  const spki = der && subjectPublicKeyInfo(der);
  if (!spki) throw rejected('SigningCertURL does not hold a PEM X.509 certificate.');
  return spki;
}

async function readText(res: Response, maxBytes: number): Promise<string | undefined> {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel();
      return undefined;
    }
    chunks.push(value);
  }
  const all = new Uint8Array(size);
  let offset = 0;
  for (const c of chunks) {
    all.set(c, offset);
    offset += c.byteLength;
  }
  return new TextDecoder().decode(all);
}

function decodeBase64(s: string): Uint8Array<ArrayBuffer> | undefined {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(s) || s.length % 4 !== 0) return undefined;
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** One DER element: its tag, and where its content starts and the element ends. */
interface Tlv {
  tag: number;
  start: number;
  end: number;
}

function readTlv(der: Uint8Array, at: number, limit: number): Tlv | undefined {
  if (at + 2 > limit) return undefined;
  const tag = der[at] as number;
  let length = der[at + 1] as number;
  let start = at + 2;
  if (length & 0x80) {
    const n = length & 0x7f;
    if (n === 0 || n > 4 || start + n > limit) return undefined;
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + (der[start + i] as number);
    start += n;
  }
  const end = start + length;
  return end <= limit ? { tag, start, end } : undefined;
}

/**
 * The SubjectPublicKeyInfo of an X.509 certificate (RFC 5280 §4.1): Certificate → tbsCertificate →
 * [0] version?, serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo.
 */
export function subjectPublicKeyInfo(der: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer> | undefined {
  const cert = readTlv(der, 0, der.length);
  if (cert?.tag !== 0x30) return undefined;
  const tbs = readTlv(der, cert.start, cert.end);
  if (tbs?.tag !== 0x30) return undefined;
  let at = tbs.start;
  let field = readTlv(der, at, tbs.end);
  if (field?.tag === 0xa0) {
    at = field.end;
    field = readTlv(der, at, tbs.end);
  }
  // serialNumber, signature, issuer, validity, subject: skipped.
  const expected = [0x02, 0x30, 0x30, 0x30, 0x30];
  for (const tag of expected) {
    if (field?.tag !== tag) return undefined;
    at = field.end;
    field = readTlv(der, at, tbs.end);
  }
  if (field?.tag !== 0x30) return undefined;
  return der.slice(at, field.end);
}
