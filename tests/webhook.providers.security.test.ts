import { generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../src/app.js';
import { parseConfig } from '../src/config.js';
import { silentLogger } from '../src/log.js';
import { createRenderer } from '../src/mail/render.js';
import { loadTemplates } from '../src/mail/templates-fs.js';
import { addresses, seedSubscribers } from './support/sendout.js';
import type { TestService } from './support/service.js';
import { createTestService, PUBLIC_URL, PUBLISHER_TOKEN } from './support/service.js';
import type { ProviderKeys } from './support/webhooks.js';
import {
  fixture,
  genericRequest,
  jsonRequest,
  mailgunBody,
  makeProviderKeys,
  postmarkRequest,
  resendRequest,
  sendgridRequest,
} from './support/webhooks.js';

/**
 * Anyone can POST to a webhook's address: only the provider's own requests change anything. Unsigned, badly
 * signed, stale (more than 5 minutes), replayed and malformed requests are refused, and the subscriber is
 * left exactly as they were.
 */

let s: TestService;
let keys: ProviderKeys;
const SIX_MINUTES = 6 * 60_000;

beforeAll(async () => {
  const made = makeProviderKeys();
  keys = made.keys;
  s = await createTestService(made.env);
});

afterAll(async () => {
  await s?.close();
});

const post = (path: string, init: RequestInit) => s.app.request(path, init);

const detail = (email: string) => s.detail(email);

/** Sends each request about a fresh confirmed reader and checks it is refused with `status`, nothing changed. */
async function refused(
  label: string,
  status: number,
  request: (email: string) => [string, RequestInit],
): Promise<void> {
  const [email] = addresses(`refused-${label}`, 1) as [string];
  await seedSubscribers(s.database.db, 'confirmed', [email]);
  const before = await detail(email);
  const res = await post(...request(email));
  expect(res.status, label).toBe(status);
  const body = (await res.json()) as { error: { code: string } };
  if (status === 401) expect(body.error.code, label).toBe('signature_invalid');
  expect(await detail(email), label).toEqual(before);
}

const mailgun = (body: string): RequestInit => jsonRequest(body);

describe('Resend (Svix)', () => {
  const path = '/webhooks/resend';
  const body = (e: string) => fixture('resend-bounced', e);
  it('refuses unsigned, wrongly signed, altered, stale and future-dated requests', async () => {
    await refused('resend-unsigned', 401, (e) => [path, jsonRequest(body(e))]);
    await refused('resend-other-secret', 401, (e) => [
      path,
      resendRequest(keys, body(e), {
        secret: `whsec_${Buffer.from('another secret, 24 bytes!').toString('base64')}`,
      }),
    ]);
    await refused('resend-altered', 401, (e) => {
      const init = resendRequest(keys, body(e));
      return [path, { ...init, body: String(init.body).replace('Permanent', 'Transient') }];
    });
    await refused('resend-stale', 401, (e) => [
      path,
      resendRequest(keys, body(e), { at: Date.now() - SIX_MINUTES }),
    ]);
    await refused('resend-future', 401, (e) => [
      path,
      resendRequest(keys, body(e), { at: Date.now() + SIX_MINUTES }),
    ]);
    await refused('resend-other-id', 401, (e) => {
      const init = resendRequest(keys, body(e));
      return [
        path,
        { ...init, headers: { ...(init.headers as Record<string, string>), 'svix-id': 'msg_other' } },
      ];
    });
  });

  it('accepts a request whose svix-signature lists an old signature next to the right one (secret rotation)', async () => {
    const [email] = addresses('resend-rotation', 1) as [string];
    await seedSubscribers(s.database.db, 'confirmed', [email]);
    const init = resendRequest(keys, body(email));
    const headers = init.headers as Record<string, string>;
    headers['svix-signature'] = `v1,${Buffer.alloc(32).toString('base64')} ${headers['svix-signature']}`;
    expect((await post(path, init)).status).toBe(200);
    expect((await detail(email)).subscriber.status).toBe('bounced');
  });

  it('a signed body that is not a Resend event is refused as invalid and changes nothing', async () => {
    await refused('resend-malformed', 422, () => [
      path,
      resendRequest(keys, JSON.stringify({ hello: 'world' })),
    ]);
    await refused('resend-not-json', 400, () => [path, resendRequest(keys, '{"type": "email.bounced",')]);
  });
});

describe('Postmark (Basic auth)', () => {
  const path = '/webhooks/postmark';
  it('refuses requests without the credentials, or with wrong ones', async () => {
    await refused('postmark-none', 401, (e) => [path, jsonRequest(fixture('postmark-bounce', e))]);
    await refused('postmark-wrong', 401, (e) => [
      path,
      postmarkRequest(keys, fixture('postmark-bounce', e), `${keys.postmarkUser}:wrong-password-0123456789`),
    ]);
    await refused('postmark-user', 401, (e) => [
      path,
      postmarkRequest(keys, fixture('postmark-bounce', e), `someone:${keys.postmarkPassword}`),
    ]);
    await refused('postmark-malformed', 422, () => [path, postmarkRequest(keys, '[1, 2, 3]')]);
  });
});

describe('Mailgun', () => {
  const path = '/webhooks/mailgun';
  const text = (e: string) => fixture('mailgun-failed-permanent', e);
  it('refuses unsigned, wrongly signed, altered, stale and malformed requests', async () => {
    await refused('mailgun-unsigned', 401, (e) => [path, mailgun(text(e))]);
    await refused('mailgun-other-key', 401, (e) => [
      path,
      mailgun(mailgunBody(keys, text(e), { key: 'key-another-one-0123456789' })),
    ]);
    await refused('mailgun-stale', 401, (e) => [
      path,
      mailgun(mailgunBody(keys, text(e), { at: Date.now() - SIX_MINUTES })),
    ]);
    await refused('mailgun-not-json', 401, () => [path, mailgun('signature=abc')]);
    await refused('mailgun-signed-token-changed', 401, (e) => {
      const body = JSON.parse(mailgunBody(keys, text(e))) as { signature: { token: string } };
      body.signature.token = `${body.signature.token}x`;
      return [path, mailgun(JSON.stringify(body))];
    });
    await refused('mailgun-no-event', 422, () => [path, mailgun(mailgunBody(keys, '{"signature": {}}'))]);
  });

  it('a token seen before is refused: a replay, even of a request that was accepted', async () => {
    const [email, other] = addresses('mailgun-replay', 2) as [string, string];
    await seedSubscribers(s.database.db, 'confirmed', [email, other]);
    const body = mailgunBody(keys, fixture('mailgun-complained', email), { token: 'a'.repeat(50) });
    expect((await post(path, mailgun(body))).status).toBe(200);
    const seen = await detail(email);
    expect((await post(path, mailgun(body))).status).toBe(401);
    // The same token, signed anew, about someone else: still refused.
    await refused('mailgun-token-reused', 401, (e) => [
      path,
      mailgun(mailgunBody(keys, fixture('mailgun-complained', e), { token: 'a'.repeat(50) })),
    ]);
    expect(await detail(email)).toEqual(seen);
  });
});

describe('SendGrid (ECDSA P-256)', () => {
  const path = '/webhooks/sendgrid';
  const body = (e: string) => fixture('sendgrid-events', e);
  it('refuses unsigned, wrongly signed, altered, stale and malformed requests', async () => {
    const stranger = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    await refused('sendgrid-unsigned', 401, (e) => [path, jsonRequest(body(e))]);
    await refused('sendgrid-other-key', 401, (e) => [
      path,
      sendgridRequest(keys, body(e), { privateKey: stranger }),
    ]);
    await refused('sendgrid-altered', 401, (e) => {
      const init = sendgridRequest(keys, body(e));
      return [path, { ...init, body: String(init.body).replace('"processed"', '"delivered"') }];
    });
    await refused('sendgrid-stale', 401, (e) => [
      path,
      sendgridRequest(keys, body(e), { at: Date.now() - SIX_MINUTES }),
    ]);
    await refused('sendgrid-timestamp-moved', 401, (e) => {
      const init = sendgridRequest(keys, body(e));
      const headers = { ...(init.headers as Record<string, string>) };
      headers['x-twilio-email-event-webhook-timestamp'] = String(Math.floor(Date.now() / 1000) + 1);
      return [path, { ...init, headers }];
    });
    await refused('sendgrid-garbage-signature', 401, (e) => {
      const init = sendgridRequest(keys, body(e));
      const headers = { ...(init.headers as Record<string, string>) };
      headers['x-twilio-email-event-webhook-signature'] = 'bm90IGEgc2lnbmF0dXJl';
      return [path, { ...init, headers }];
    });
    await refused('sendgrid-malformed', 422, () => [path, sendgridRequest(keys, '{"event": "bounce"}')]);
  });
});

describe('the generic endpoint (HMAC)', () => {
  const path = '/webhooks/bounces';
  const event = (email: string) => ({ email, type: 'bounce', permanent: true });
  it('refuses unsigned, wrongly signed, altered, stale and malformed requests', async () => {
    await refused('generic-unsigned', 401, (e) => [path, jsonRequest(JSON.stringify(event(e)))]);
    await refused('generic-other-secret', 401, (e) => [
      path,
      genericRequest(keys, event(e), { secret: 'x'.repeat(40) }),
    ]);
    await refused('generic-altered', 401, (e) => {
      const init = genericRequest(keys, { email: e, type: 'bounce', permanent: false });
      return [path, { ...init, body: String(init.body).replace('false', 'true') }];
    });
    await refused('generic-stale', 401, (e) => [
      path,
      genericRequest(keys, event(e), { at: Date.now() - SIX_MINUTES }),
    ]);
    await refused('generic-future', 401, (e) => [
      path,
      genericRequest(keys, event(e), { at: Date.now() + SIX_MINUTES }),
    ]);
    await refused('generic-malformed', 422, (e) => [
      path,
      genericRequest(keys, { email: e, type: 'opened' }),
    ]);
  });

  it('a replayed request (the same signature, within 5 minutes) is one effect', async () => {
    const [email] = addresses('generic-replay', 1) as [string];
    await seedSubscribers(s.database.db, 'confirmed', [email]);
    const init = genericRequest(keys, { email, type: 'complaint' });
    expect(await (await post(path, init)).json()).toMatchObject({ status: 'processed', changed: 1 });
    const seen = await detail(email);
    expect(await (await post(path, init)).json()).toMatchObject({ status: 'duplicate' });
    expect(await detail(email)).toEqual(seen);
  });
});

describe('each endpoint is off until its setting is present', () => {
  it('answers 404 without its setting, even to a well-signed request, and changes nothing', async () => {
    const bare = createApp({
      config: parseConfig({ PUBLIC_URL, PUBLISHER_TOKEN, MAIL_FROM: 'Essays <essays@example.test>' }),
      database: s.database,
      renderer: createRenderer(loadTemplates()),
      log: silentLogger,
    });
    const [email] = addresses('off', 1) as [string];
    await seedSubscribers(s.database.db, 'confirmed', [email]);
    const before = await detail(email);
    const requests: [string, RequestInit][] = [
      ['/webhooks/resend', resendRequest(keys, fixture('resend-bounced', email))],
      ['/webhooks/postmark', postmarkRequest(keys, fixture('postmark-bounce', email))],
      ['/webhooks/mailgun', mailgun(mailgunBody(keys, fixture('mailgun-failed-permanent', email)))],
      ['/webhooks/sendgrid', sendgridRequest(keys, fixture('sendgrid-events', email))],
      ['/webhooks/bounces', genericRequest(keys, { email, type: 'bounce', permanent: true })],
    ];
    for (const [path, init] of requests) {
      const res = await bare.request(path, init);
      expect(res.status, path).toBe(404);
      expect(await res.json()).toMatchObject({ error: { code: 'not_found' } });
    }
    expect(await detail(email)).toEqual(before);
  });

  it('bodies over 1 MiB are refused before they are read', async () => {
    const res = await post(
      '/webhooks/bounces',
      genericRequest(keys, `{"email":"${'a'.repeat(1024 * 1024)}"}`),
    );
    expect(res.status).toBe(413);
  });
});

describe('settings are checked at start, by shape', () => {
  const base = { PUBLIC_URL, PUBLISHER_TOKEN };
  it('refuses a Resend secret without whsec_, a SendGrid key that is not a P-256 key, half of Postmark’s pair', () => {
    expect(() => parseConfig({ ...base, RESEND_WEBHOOK_SECRET: 'not-a-secret' })).toThrow(
      /RESEND_WEBHOOK_SECRET/,
    );
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({
      type: 'spki',
      format: 'der',
    });
    expect(() => parseConfig({ ...base, SENDGRID_WEBHOOK_PUBLIC_KEY: rsa.toString('base64') })).toThrow(
      /SENDGRID_WEBHOOK_PUBLIC_KEY/,
    );
    expect(() => parseConfig({ ...base, POSTMARK_WEBHOOK_USER: 'postmark' })).toThrow(
      /POSTMARK_WEBHOOK_PASSWORD/,
    );
    expect(() => parseConfig({ ...base, BOUNCE_WEBHOOK_SECRET: 'short' })).toThrow(/BOUNCE_WEBHOOK_SECRET/);
    const error = (() => {
      try {
        parseConfig({ ...base, MAILGUN_WEBHOOK_SIGNING_KEY: 'short secret!' });
      } catch (e) {
        return String(e);
      }
    })();
    expect(error).toMatch(/MAILGUN_WEBHOOK_SIGNING_KEY="?\(hidden\)/);
  });

  it('takes the SendGrid key as SendGrid shows it, or as a PEM block', () => {
    const pem = `-----BEGIN PUBLIC KEY-----\n${keys.sendgridPublicKey}\n-----END PUBLIC KEY-----`;
    expect(parseConfig({ ...base, SENDGRID_WEBHOOK_PUBLIC_KEY: pem }).sendgridWebhookPublicKey).toBe(
      keys.sendgridPublicKey,
    );
  });
});
