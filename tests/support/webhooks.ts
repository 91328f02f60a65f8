import { createHmac, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';

/**
 * Provider webhook requests as the providers send them: bodies from the fixtures (the shapes of each
 * provider's documentation, tests/fixtures/webhooks/), signed the way each provider signs, with keys the test
 * makes. Nothing here mocks the service: the requests go to the real routes.
 */

const FIXTURE_ADDRESS = 'reader@example.org';

/**
 * A fixture's text with the address it is about replaced, and its event ids (SendGrid's sg_event_id,
 * Mailgun's id) made unique, so that each call is a new event; the same text sent twice is a retry.
 */
export function fixture(name: string, email: string): string {
  const suffix = randomBytes(6).toString('hex');
  return readFileSync(new URL(`../fixtures/webhooks/${name}.json`, import.meta.url), 'utf8')
    .replaceAll(FIXTURE_ADDRESS, email)
    .replace(/("(?:sg_event_id|id)":\s*")([^"]+)"/g, `$1$2-${suffix}"`);
}

/** Keys and secrets for every provider, and the settings that turn their endpoints on. */
export function makeProviderKeys() {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const keys = {
    resendSecret: `whsec_${randomBytes(24).toString('base64')}`,
    postmarkUser: 'postmark',
    postmarkPassword: randomBytes(16).toString('hex'),
    mailgunKey: `key-${randomBytes(16).toString('hex')}`,
    sendgridPrivateKey: privateKey,
    sendgridPublicKey: publicKey.export({ type: 'spki', format: 'der' }).toString('base64'),
    bounceSecret: randomBytes(32).toString('hex'),
  };
  const env = {
    RESEND_WEBHOOK_SECRET: keys.resendSecret,
    POSTMARK_WEBHOOK_USER: keys.postmarkUser,
    POSTMARK_WEBHOOK_PASSWORD: keys.postmarkPassword,
    MAILGUN_WEBHOOK_SIGNING_KEY: keys.mailgunKey,
    SENDGRID_WEBHOOK_PUBLIC_KEY: keys.sendgridPublicKey,
    BOUNCE_WEBHOOK_SECRET: keys.bounceSecret,
  };
  return { keys, env };
}

export type ProviderKeys = ReturnType<typeof makeProviderKeys>['keys'];

const seconds = (at = Date.now()) => String(Math.floor(at / 1000));

export interface SignOptions {
  /** When the request was signed (ms); now by default. */
  at?: number;
}

/** A Resend (Svix) request: svix-id, svix-timestamp, svix-signature over `id.timestamp.body`. */
export function resendRequest(
  keys: ProviderKeys,
  body: string,
  options: SignOptions & { id?: string; secret?: string } = {},
): RequestInit {
  const id = options.id ?? `msg_${randomBytes(12).toString('hex')}`;
  const timestamp = seconds(options.at);
  const key = Buffer.from((options.secret ?? keys.resendSecret).replace(/^whsec_/, ''), 'base64');
  const signature = createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64');
  return {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'svix-id': id,
      'svix-timestamp': timestamp,
      'svix-signature': `v1,${signature}`,
    },
    body,
  };
}

/** A Postmark request: Basic credentials, as in `https://user:password@host/webhooks/postmark`. */
export function postmarkRequest(
  keys: ProviderKeys,
  body: string,
  credentials = `${keys.postmarkUser}:${keys.postmarkPassword}`,
): RequestInit {
  return {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      authorization: `Basic ${Buffer.from(credentials).toString('base64')}`,
    },
    body,
  };
}

/** A Mailgun body with its `signature` filled in: hex HMAC of timestamp + token. */
export function mailgunBody(
  keys: ProviderKeys,
  fixtureText: string,
  options: SignOptions & { token?: string; key?: string } = {},
): string {
  const body = JSON.parse(fixtureText) as { signature: Record<string, string> };
  const token = options.token ?? randomBytes(25).toString('hex');
  const timestamp = seconds(options.at);
  body.signature = {
    timestamp,
    token,
    signature: createHmac('sha256', options.key ?? keys.mailgunKey)
      .update(timestamp + token)
      .digest('hex'),
  };
  return JSON.stringify(body);
}

export const jsonRequest = (body: string, headers: Record<string, string> = {}): RequestInit => ({
  method: 'POST',
  headers: { 'content-type': 'application/json', ...headers },
  body,
});

/** A SendGrid request: ECDSA P-256 (DER, base64) over timestamp + body. */
export function sendgridRequest(
  keys: ProviderKeys,
  body: string,
  options: SignOptions & { privateKey?: ProviderKeys['sendgridPrivateKey'] } = {},
): RequestInit {
  const timestamp = seconds(options.at);
  const signature = sign('sha256', Buffer.from(timestamp + body), {
    key: options.privateKey ?? keys.sendgridPrivateKey,
    dsaEncoding: 'der',
  }).toString('base64');
  return jsonRequest(body, {
    'x-twilio-email-event-webhook-signature': signature,
    'x-twilio-email-event-webhook-timestamp': timestamp,
  });
}

/** A request to the generic endpoint: X-Timestamp, X-Signature-256 = sha256=hex HMAC of `timestamp.body`. */
export function genericRequest(
  keys: ProviderKeys,
  event: Record<string, unknown> | string,
  options: SignOptions & { secret?: string } = {},
): RequestInit {
  const body = typeof event === 'string' ? event : JSON.stringify(event);
  const timestamp = seconds(options.at);
  const signature = createHmac('sha256', options.secret ?? keys.bounceSecret)
    .update(`${timestamp}.${body}`)
    .digest('hex');
  return jsonRequest(body, { 'x-timestamp': timestamp, 'x-signature-256': `sha256=${signature}` });
}
