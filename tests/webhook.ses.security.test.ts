import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { subjectPublicKeyInfo } from '../src/bounces/sns.js';
import { rows } from '../src/db/client.js';
import { errorIn } from './support/reader.js';
import { seedSubscribers } from './support/sendout.js';
import type { TestService } from './support/service.js';
import { createTestService } from './support/service.js';
import type { SnsFields, SnsFixture } from './support/sns.js';
import {
  CERT_PATH,
  EC_CERT_PATH,
  GARBAGE_CERT_PATH,
  notification,
  OTHER_CERT_PATH,
  SNS_ORIGIN,
  sesBounce,
  sesComplaint,
  sign,
  snsRequest,
  startFakeSns,
  strangerKeyPem,
  subscriptionConfirmation,
  TOPIC_ARN,
} from './support/sns.js';

/**
 * The webhook believes only Amazon: every message that is not signed by a certificate on Amazon's SNS hosts,
 * for a configured topic, and recent, is refused with a clear JSON error, and nothing in the database changes.
 */

let s: TestService;
let sns: SnsFixture;
const VICTIM = 'victim@example.org';
const BYSTANDER = 'bystander@example.org';

beforeAll(async () => {
  sns = await startFakeSns();
  s = await createTestService({ SES_SNS_TOPIC_ARN: TOPIC_ARN }, { fetch: sns.fetch });
  await seedSubscribers(s.database.db, 'confirmed', [VICTIM, BYSTANDER]);
});

afterAll(async () => {
  await s?.close();
  await sns?.close();
});

const post = (init: RequestInit) => s.app.request('/webhooks/ses', init);

/** Every row a bounce or complaint could touch. */
async function snapshot(): Promise<unknown[]> {
  const db = s.database.db;
  return [
    await rows(db, sql`select * from subscribers order by id`),
    await rows(db, sql`select * from subscriber_events order by id`),
    await rows(db, sql`select * from deliveries order by essay_id, subscriber_id`),
  ];
}

/** Posts a message and expects it refused with `status` and `code`, and the database exactly as it was. */
async function expectRefused(init: RequestInit, status: number, code: string): Promise<string> {
  const before = await snapshot();
  const res = await post(init);
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/application\/json/);
  const error = await errorIn(res);
  expect(error.code).toBe(code);
  expect(error.message.length).toBeGreaterThan(10);
  expect(await snapshot()).toEqual(before);
  return error.message;
}

const bounce = () => sesBounce([VICTIM]);
const complaint = () => sesComplaint([VICTIM]);

describe('forged or altered messages are refused (401) and change nothing', () => {
  it('a message altered after signing (another address put in)', async () => {
    const m = sign(notification(sesBounce([BYSTANDER])), sns.privateKeyPem, '1');
    m.Message = JSON.stringify(bounce());
    const message = await expectRefused(snsRequest(m), 401, 'signature_invalid');
    expect(message).toMatch(/not signed by Amazon SNS/);
  });

  it('a bounce type changed after signing (Transient → Permanent), with SignatureVersion 2', async () => {
    const m = sign(notification(sesBounce([VICTIM], 'Transient')), sns.privateKeyPem, '2');
    m.Message = m.Message?.replace('"Transient"', '"Permanent"') ?? '';
    await expectRefused(snsRequest(m), 401, 'signature_invalid');
  });

  it('a signed field changed (Timestamp, MessageId, Subject added)', async () => {
    const m = sign(notification(complaint()), sns.privateKeyPem, '1');
    await expectRefused(
      snsRequest({ ...m, Timestamp: new Date(Date.now() - 1000).toISOString() }),
      401,
      'signature_invalid',
    );
    await expectRefused(snsRequest({ ...m, MessageId: 'another-id' }), 401, 'signature_invalid');
    await expectRefused(
      snsRequest({ ...m, Subject: 'Amazon SES Email Event Notification' }),
      401,
      'signature_invalid',
    );
  });

  it('a signature made for version 1 presented as version 2', async () => {
    const m = sign(notification(complaint()), sns.privateKeyPem, '1');
    await expectRefused(snsRequest({ ...m, SignatureVersion: '2' }), 401, 'signature_invalid');
  });

  it('a message signed with a key that has no certificate on Amazon’s host', async () => {
    await expectRefused(
      snsRequest(sign(notification(bounce()), strangerKeyPem(), '1')),
      401,
      'signature_invalid',
    );
  });

  it('a signature checked against another of Amazon’s certificates', async () => {
    const m = sign(
      notification(bounce(), { SigningCertURL: `${SNS_ORIGIN}${OTHER_CERT_PATH}` }),
      sns.privateKeyPem,
    );
    await expectRefused(snsRequest(m), 401, 'signature_invalid');
  });

  it('an unknown SignatureVersion, a Signature that is not base64, or none at all', async () => {
    const m = sign(notification(bounce()), sns.privateKeyPem, '2');
    await expectRefused(snsRequest({ ...m, SignatureVersion: '3' }), 401, 'signature_invalid');
    await expectRefused(snsRequest({ ...m, Signature: 'not base64 at all!' }), 401, 'signature_invalid');
    await expectRefused(snsRequest({ ...m, Signature: '' }), 401, 'signature_invalid');
    const { Signature: _, ...unsigned } = m;
    await expectRefused(snsRequest(unsigned), 400, 'bad_request');
  });
});

describe('the signing certificate must be Amazon’s, fetched over https from an SNS host', () => {
  const foreign = [
    'https://evil.example/SimpleNotificationService-1.pem',
    `https://sns.${'us-east-1'}.amazonaws.com.evil.example${CERT_PATH}`,
    `https://evil-sns.us-east-1.amazonaws.com${CERT_PATH}`,
    `https://sns.us-east-1.amazonaws.co${CERT_PATH}`,
    `http://sns.us-east-1.amazonaws.com${CERT_PATH}`,
    `https://user:pass@sns.us-east-1.amazonaws.com${CERT_PATH}`,
    `https://sns.us-east-1.amazonaws.com:8443${CERT_PATH}`,
    'https://sns.us-east-1.amazonaws.com/?Action=GetCertificate',
    'file:///etc/ssl/certs/ca-certificates.crt',
    'not a url',
  ];

  for (const url of foreign) {
    it(`a SigningCertURL of ${url} is refused without fetching it`, async () => {
      const requests = sns.requests.length;
      const m = sign(notification(bounce(), { SigningCertURL: url }), sns.privateKeyPem);
      const message = await expectRefused(snsRequest(m), 401, 'signature_invalid');
      expect(message).toMatch(/SigningCertURL/);
      expect(sns.requests.length).toBe(requests);
      expect(sns.foreignFetches).toEqual([]);
    });
  }

  it('a SigningCertURL with no certificate behind it', async () => {
    const m = sign(
      notification(bounce(), { SigningCertURL: `${SNS_ORIGIN}/SimpleNotificationService-missing.pem` }),
      sns.privateKeyPem,
    );
    await expectRefused(snsRequest(m), 401, 'signature_invalid');
  });

  it('a certificate that is not RSA, or not a certificate at all', async () => {
    for (const path of [EC_CERT_PATH, GARBAGE_CERT_PATH]) {
      const m = sign(notification(bounce(), { SigningCertURL: `${SNS_ORIGIN}${path}` }), sns.privateKeyPem);
      await expectRefused(snsRequest(m), 401, 'signature_invalid');
    }
  });

  it('the certificate reader takes any truncated or corrupted DER without throwing', () => {
    const base64 = sns.certificatePem.replace(/-----[^-]+-----|\s/g, '');
    const der = Uint8Array.from(Buffer.from(base64, 'base64'));
    expect(subjectPublicKeyInfo(der)?.length).toBeGreaterThan(256);
    for (let n = 0; n < der.length; n++) expect(subjectPublicKeyInfo(der.slice(0, n))).toBeUndefined();
    for (let i = 0; i < 64; i++) {
      const corrupted = der.slice();
      corrupted[i] = (corrupted[i] as number) ^ 0xff;
      expect(() => subjectPublicKeyInfo(corrupted)).not.toThrow();
    }
  });

  it('Amazon failing to serve the certificate answers 502 (SNS retries), and the next try works', async () => {
    const [retried] = await seedSubscribers(s.database.db, 'confirmed', ['retried@example.org']);
    const m = sign(
      notification(sesBounce([retried?.email ?? '']), {
        SigningCertURL: `${SNS_ORIGIN}/SimpleNotificationService-flaky.pem`,
      }),
      sns.privateKeyPem,
    );
    sns.failNext = 500;
    await expectRefused(snsRequest(m), 502, 'certificate_unavailable');
    // The flaky URL serves nothing afterwards either (404): refused, and nothing was cached from the failure.
    await expectRefused(snsRequest(m), 401, 'signature_invalid');
    const good = sign(notification(sesBounce(['retried@example.org'])), sns.privateKeyPem);
    expect((await post(snsRequest(good))).status).toBe(200);
  });
});

describe('only the configured topic, and only recent messages', () => {
  it('a validly signed message from another topic is refused without fetching anything', async () => {
    const requests = sns.requests.length;
    const m = sign(
      notification(bounce(), { TopicArn: 'arn:aws:sns:us-east-1:999999999999:someone-elses-topic' }),
      sns.privateKeyPem,
    );
    const message = await expectRefused(snsRequest(m), 401, 'topic_not_allowed');
    expect(message).toMatch(/SES_SNS_TOPIC_ARN/);
    expect(sns.requests.length).toBe(requests);
  });

  it('a message more than an hour old is refused as a replay', async () => {
    const old = new Date(Date.now() - 61 * 60 * 1000).toISOString();
    const m = sign(notification(bounce(), { Timestamp: old }), sns.privateKeyPem, '2');
    expect(await expectRefused(snsRequest(m), 401, 'signature_invalid')).toMatch(/hour old/);
  });

  it('a message dated in the future, or with no date, is refused', async () => {
    const later = new Date(Date.now() + 60 * 60 * 1000).toISOString();
    await expectRefused(
      snsRequest(sign(notification(bounce(), { Timestamp: later }), sns.privateKeyPem)),
      401,
      'signature_invalid',
    );
    await expectRefused(
      snsRequest(sign(notification(bounce(), { Timestamp: 'yesterday' }), sns.privateKeyPem)),
      401,
      'signature_invalid',
    );
  });
});

describe('subscription confirmations are followed only when signed and on Amazon’s host', () => {
  const visits = () => sns.requests.filter((r) => r.includes('ConfirmSubscription')).length;

  it('a tampered SubscriptionConfirmation is refused and its SubscribeURL not visited', async () => {
    const before = visits();
    const m = sign(subscriptionConfirmation(), sns.privateKeyPem);
    await expectRefused(snsRequest({ ...m, Token: 'another-token' }), 401, 'signature_invalid');
    expect(visits()).toBe(before);
  });

  it('a signed SubscriptionConfirmation whose SubscribeURL is not on Amazon’s host is refused and not visited', async () => {
    const m = sign(
      subscriptionConfirmation({ SubscribeURL: 'https://evil.example/?Action=ConfirmSubscription' }),
      sns.privateKeyPem,
    );
    expect(await expectRefused(snsRequest(m), 401, 'signature_invalid')).toMatch(/SubscribeURL/);
    expect(sns.foreignFetches).toEqual([]);
  });

  it('a SubscriptionConfirmation that Amazon does not accept answers 502 with what to do', async () => {
    const m = sign(
      subscriptionConfirmation({ SubscribeURL: `${SNS_ORIGIN}/?Action=Nothing` }),
      sns.privateKeyPem,
    );
    expect(await expectRefused(snsRequest(m), 502, 'confirmation_failed')).toMatch(
      /send the confirmation again/,
    );
  });
});

describe('what is not an SNS message gets 400 and changes nothing', () => {
  const signedBounce = () => sign(notification(bounce()), sns.privateKeyPem);

  it('a body that is not JSON', async () => {
    const init = snsRequest(signedBounce(), '{"Type": "Notification", ');
    expect(await expectRefused(init, 400, 'malformed_json')).toMatch(/raw message delivery/);
  });

  it('JSON that is not an object', async () => {
    await expectRefused(snsRequest(signedBounce(), '[1,2,3]'), 400, 'bad_request');
    await expectRefused(snsRequest(signedBounce(), 'null'), 400, 'bad_request');
  });

  it('an SES notification posted bare (raw message delivery on)', async () => {
    await expectRefused(snsRequest({ Type: 'Notification' }, JSON.stringify(bounce())), 400, 'bad_request');
  });

  it('an unknown message type, even when signed', async () => {
    const m = sign({ ...notification(bounce()), Type: 'Surprise' }, sns.privateKeyPem);
    expect(await expectRefused(snsRequest(m), 400, 'bad_request')).toMatch(/Unknown SNS message type/);
  });

  it('a message type header that disagrees with the body', async () => {
    const m = signedBounce();
    const init = snsRequest(m);
    (init.headers as Record<string, string>)['x-amz-sns-message-type'] = 'SubscriptionConfirmation';
    await expectRefused(init, 400, 'bad_request');
  });

  it('a message without the fields SNS always sends, or with fields of the wrong type', async () => {
    const { TopicArn: _, ...noTopic } = signedBounce();
    expect(await expectRefused(snsRequest(noTopic), 400, 'bad_request')).toMatch(/TopicArn/);
    const numeric = JSON.stringify({ ...signedBounce(), Message: 42 });
    await expectRefused(snsRequest(signedBounce(), numeric), 400, 'bad_request');
    const { Token: __, ...noToken } = sign(subscriptionConfirmation(), sns.privateKeyPem);
    await expectRefused(snsRequest(noToken), 400, 'bad_request');
  });

  it('a body over the size limit gets 413', async () => {
    const huge = sign(
      notification({ notificationType: 'Bounce', padding: 'x'.repeat(1100 * 1024) }),
      sns.privateKeyPem,
    );
    await expectRefused(snsRequest(huge), 413, 'payload_too_large');
  });

  it('GET on the endpoint is not found', async () => {
    const res = await s.app.request('/webhooks/ses');
    expect(res.status).toBe(404);
    expect((await errorIn(res)).code).toBe('not_found');
  });
});

describe('without SES_SNS_TOPIC_ARN the endpoint does not exist', () => {
  let off: TestService;
  beforeAll(async () => {
    off = await createTestService({}, { fetch: sns.fetch });
    await seedSubscribers(off.database.db, 'confirmed', [VICTIM]);
  });
  afterAll(async () => {
    await off?.close();
  });

  it('even a correctly signed bounce gets 404 and changes nothing', async () => {
    const requests = sns.requests.length;
    const res = await off.app.request(
      '/webhooks/ses',
      snsRequest(sign(notification(bounce()), sns.privateKeyPem)),
    );
    expect(res.status).toBe(404);
    expect((await errorIn(res)).code).toBe('not_found');
    const [row] = await rows<{ status: string }>(
      off.database.db,
      sql`select status::text as status from subscribers`,
    );
    expect(row?.status).toBe('confirmed');
    expect(sns.requests.length).toBe(requests);
  });
});

describe('after all of the above', () => {
  it('the victim is still confirmed, and a genuine message still works', async () => {
    const [row] = await rows<{ status: string }>(
      s.database.db,
      sql`select status::text as status from subscribers where email = ${VICTIM}`,
    );
    expect(row?.status).toBe('confirmed');
    const res = await post(snsRequest(sign(notification(bounce()), sns.privateKeyPem, '2') as SnsFields));
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ changed: 1 });
  });
});
