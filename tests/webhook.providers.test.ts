import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StatsView } from '../src/list/schemas.js';
import { signIn } from './support/admin.js';
import { addresses, lettersPerAddress, seedSubscribers } from './support/sendout.js';
import type { TestService } from './support/service.js';
import { createTestService, PUBLISHER_TOKEN } from './support/service.js';
import type { ProviderKeys } from './support/webhooks.js';
import {
  fixture,
  genericRequest,
  mailgunBody,
  makeProviderKeys,
  postmarkRequest,
  resendRequest,
  sendgridRequest,
} from './support/webhooks.js';

/**
 * Bounces and complaints from the provider the service sends with: Resend, Postmark, Mailgun, SendGrid, or
 * any other through the generic endpoint. Real payloads (the providers' documented shapes), signed as each
 * provider signs, acted on: a hard bounce or a complaint stops all mail to the address, soft bounces are
 * counted, and the same event twice is one effect.
 */

let s: TestService;
let keys: ProviderKeys;
const auth = { authorization: `Bearer ${PUBLISHER_TOKEN}` };

beforeAll(async () => {
  const made = makeProviderKeys();
  keys = made.keys;
  s = await createTestService({ ...made.env, SOFT_BOUNCE_LIMIT: '3' });
});

afterAll(async () => {
  await s?.close();
});

const post = (path: string, init: RequestInit) => s.app.request(path, init);

const detail = (email: string) => s.detail(email);

async function publishAndDrain(slug: string): Promise<Map<string, number>> {
  const title = `Essay ${slug}`;
  const res = await s.publish({ slug, title, url: `https://example.org/essays/${slug}` });
  expect(res.status).toBe(202);
  await s.drain();
  return lettersPerAddress(s.smtp.received, title);
}

/** Each provider's hard bounce and complaint, as a request about `email`. */
const hardBounce: Record<string, (email: string) => [string, RequestInit]> = {
  resend: (e) => ['/webhooks/resend', resendRequest(keys, fixture('resend-bounced', e))],
  postmark: (e) => ['/webhooks/postmark', postmarkRequest(keys, fixture('postmark-bounce', e))],
  mailgun: (e) => [
    '/webhooks/mailgun',
    {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: mailgunBody(keys, fixture('mailgun-failed-permanent', e)),
    },
  ],
  sendgrid: (e) => ['/webhooks/sendgrid', sendgridRequest(keys, fixture('sendgrid-events', e))],
  webhook: (e) => [
    '/webhooks/bounces',
    genericRequest(keys, { email: e, type: 'bounce', permanent: true, reason: '550 no such user' }),
  ],
};

const complaint: Record<string, (email: string) => [string, RequestInit]> = {
  resend: (e) => ['/webhooks/resend', resendRequest(keys, fixture('resend-complained', e))],
  postmark: (e) => ['/webhooks/postmark', postmarkRequest(keys, fixture('postmark-spam-complaint', e))],
  mailgun: (e) => [
    '/webhooks/mailgun',
    {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: mailgunBody(keys, fixture('mailgun-complained', e)),
    },
  ],
  sendgrid: (e) => ['/webhooks/sendgrid', sendgridRequest(keys, fixture('sendgrid-spamreport', e))],
  webhook: (e) => [
    '/webhooks/bounces',
    genericRequest(keys, { email: e, type: 'complaint', reason: 'abuse' }),
  ],
};

describe('a hard bounce or a complaint from each provider stops all mail to the address', () => {
  it('each provider’s bounce suppresses, each complaint unsubscribes, and the next send-out skips them all', async () => {
    const sources = Object.keys(hardBounce);
    const bounced = addresses('provider-bounce', sources.length);
    const complained = addresses('provider-complaint', sources.length);
    const [kept] = addresses('provider-kept', 1) as [string];
    await seedSubscribers(s.database.db, 'confirmed', [...bounced, ...complained, kept]);
    await publishAndDrain('before-reports');

    for (const [i, source] of sources.entries()) {
      const email = bounced[i] as string;
      const [path, init] = (hardBounce[source] as (e: string) => [string, RequestInit])(email);
      const res = await post(path, init);
      expect(res.status, source).toBe(200);
      expect(await res.json(), source).toMatchObject({ status: 'processed', changed: 1 });
      const seen = await detail(email);
      expect(seen.subscriber.status, source).toBe('bounced');
      expect(seen.history.at(-1), source).toMatchObject({
        kind: 'bounced',
        source,
        essay: 'before-reports',
      });
      expect(seen.history.at(-1)?.reason, source).toBeTruthy();
    }
    for (const [i, source] of sources.entries()) {
      const email = complained[i] as string;
      const [path, init] = (complaint[source] as (e: string) => [string, RequestInit])(email);
      const res = await post(path, init);
      expect(res.status, source).toBe(200);
      expect(await res.json(), source).toMatchObject({ status: 'processed', changed: 1 });
      const seen = await detail(email);
      expect(seen.subscriber.status, source).toBe('unsubscribed');
      expect(
        seen.history.find((h) => h.kind === 'complained'),
        source,
      ).toMatchObject({ source });
    }

    const letters = await publishAndDrain('after-reports');
    for (const email of [...bounced, ...complained]) expect(letters.get(email), email).toBeUndefined();
    expect(letters.get(kept)).toBe(1);
  });

  it('the Resend fixture’s reason is kept: the bounce type and subtype', async () => {
    const [email] = addresses('resend-reason', 1) as [string];
    await seedSubscribers(s.database.db, 'confirmed', [email]);
    expect(
      (await post('/webhooks/resend', resendRequest(keys, fixture('resend-bounced', email)))).status,
    ).toBe(200);
    expect((await detail(email)).history.at(-1)).toMatchObject({
      reason: 'Permanent: Suppressed',
      source: 'resend',
    });
  });

  it('SendGrid: a dropped event for a bounced address suppresses it too', async () => {
    const [email] = addresses('sendgrid-dropped', 1) as [string];
    await seedSubscribers(s.database.db, 'confirmed', [email]);
    const res = await post('/webhooks/sendgrid', sendgridRequest(keys, fixture('sendgrid-dropped', email)));
    expect(await res.json()).toMatchObject({ status: 'processed', changed: 1 });
    expect((await detail(email)).subscriber.status).toBe('bounced');
  });

  it('a valid event about an address the list does not hold answers 200 and changes nothing', async () => {
    const before = await s.app.request('/api/stats?days=1&sendouts=0', { headers: auth });
    const statsBefore = (await before.json()) as StatsView;
    for (const source of Object.keys(hardBounce)) {
      const [path, init] = (hardBounce[source] as (e: string) => [string, RequestInit])(
        'stranger@example.net',
      );
      const res = await post(path, init);
      expect(res.status, source).toBe(200);
      expect(await res.json(), source).toMatchObject({ status: 'processed', changed: 0 });
    }
    const after = (await (
      await s.app.request('/api/stats?days=1&sendouts=0', { headers: auth })
    ).json()) as StatsView;
    expect(after.subscribers).toEqual(statsBefore.subscribers);
  });

  it('events that are not bounces, complaints or deliveries are answered 200 and ignored', async () => {
    const [email] = addresses('opened', 1) as [string];
    await seedSubscribers(s.database.db, 'confirmed', [email]);
    const before = await detail(email);
    const res = await post('/webhooks/resend', resendRequest(keys, fixture('resend-opened', email)));
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: 'ignored', type: 'email.opened' });
    expect(await detail(email)).toEqual(before);
  });
});

describe('providers retry: the same event twice is one effect', () => {
  it('Resend: the same svix-id again (re-signed, as Svix retries) adds nothing', async () => {
    const [email] = addresses('retry-resend', 1) as [string];
    await seedSubscribers(s.database.db, 'unsubscribed', [email]);
    const body = fixture('resend-complained', email);
    const first = await post('/webhooks/resend', resendRequest(keys, body, { id: 'msg_retry_1' }));
    expect(await first.json()).toMatchObject({ status: 'processed' });
    const seen = await detail(email);
    expect(seen.history.filter((h) => h.kind === 'complained')).toHaveLength(1);

    const again = await post(
      '/webhooks/resend',
      resendRequest(keys, body, { id: 'msg_retry_1', at: Date.now() + 1000 }),
    );
    expect(again.status).toBe(200);
    expect(await again.json()).toMatchObject({ status: 'duplicate', changed: 0 });
    expect(await detail(email)).toEqual(seen);
  });

  it('Postmark: the same body again adds nothing', async () => {
    const [email] = addresses('retry-postmark', 1) as [string];
    await seedSubscribers(s.database.db, 'bounced', [email]);
    const body = fixture('postmark-bounce', email);
    expect(await (await post('/webhooks/postmark', postmarkRequest(keys, body))).json()).toMatchObject({
      status: 'processed',
    });
    const seen = await detail(email);
    expect(await (await post('/webhooks/postmark', postmarkRequest(keys, body))).json()).toMatchObject({
      status: 'duplicate',
    });
    expect(await detail(email)).toEqual(seen);
  });

  it('Mailgun: the same event id with a new token adds nothing', async () => {
    const [email] = addresses('retry-mailgun', 1) as [string];
    await seedSubscribers(s.database.db, 'confirmed', [email]);
    const text = fixture('mailgun-failed-temporary', email);
    const send = () =>
      post('/webhooks/mailgun', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: mailgunBody(keys, text),
      });
    expect(await (await send()).json()).toMatchObject({ status: 'processed' });
    const seen = await detail(email);
    expect(seen.history.filter((h) => h.kind === 'soft_bounced')).toHaveLength(1);
    expect(await (await send()).json()).toMatchObject({ status: 'duplicate' });
    expect(await detail(email)).toEqual(seen);
  });

  it('SendGrid: a batch sent again acts on no event twice, and a new event in it is acted on', async () => {
    const [email, other] = addresses('retry-sendgrid', 2) as [string, string];
    await seedSubscribers(s.database.db, 'confirmed', [email, other]);
    const first = JSON.parse(fixture('sendgrid-blocked', email)) as Record<string, unknown>[];
    expect(
      await (await post('/webhooks/sendgrid', sendgridRequest(keys, JSON.stringify(first)))).json(),
    ).toMatchObject({
      status: 'processed',
    });
    const seen = await detail(email);
    expect(seen.history.filter((h) => h.kind === 'soft_bounced')).toHaveLength(1);

    const spam = JSON.parse(fixture('sendgrid-spamreport', other)) as Record<string, unknown>[];
    const overlapping = [...first, { ...spam[0], sg_event_id: 'new-spamreport' }];
    const res = await post('/webhooks/sendgrid', sendgridRequest(keys, JSON.stringify(overlapping)));
    expect(await res.json()).toMatchObject({ status: 'processed', changed: 1 });
    expect(await detail(email)).toEqual(seen);
    expect((await detail(other)).subscriber.status).toBe('unsubscribed');
  });

  it('the generic endpoint: the same id again adds nothing', async () => {
    const [email] = addresses('retry-generic', 1) as [string];
    await seedSubscribers(s.database.db, 'confirmed', [email]);
    const event = { email, type: 'bounce', reason: '452 mailbox full', id: 'relay-1' };
    expect(await (await post('/webhooks/bounces', genericRequest(keys, event))).json()).toMatchObject({
      status: 'processed',
    });
    const seen = await detail(email);
    const again = await post('/webhooks/bounces', genericRequest(keys, event, { at: Date.now() + 2000 }));
    expect(await again.json()).toMatchObject({ status: 'duplicate' });
    expect(await detail(email)).toEqual(seen);
  });
});

describe('soft bounces: SOFT_BOUNCE_LIMIT of them on different letters, with no delivery in between, suppress', () => {
  const soft = (email: string, id: string) =>
    post(
      '/webhooks/bounces',
      genericRequest(keys, { email, type: 'bounce', reason: '452 4.2.2 mailbox full', id }),
    );

  it('three soft bounces on three letters suppress the address; the next send-out skips it', async () => {
    const [email, kept] = addresses('soft-three', 2) as [string, string];
    await seedSubscribers(s.database.db, 'confirmed', [email, kept]);
    for (const n of [1, 2, 3]) {
      await publishAndDrain(`soft-three-${n}`);
      const res = await soft(email, `soft-three-${n}`);
      expect(await res.json()).toMatchObject({ status: 'processed', changed: n === 3 ? 1 : 0 });
      expect((await detail(email)).subscriber.status).toBe(n === 3 ? 'bounced' : 'confirmed');
    }
    const seen = await detail(email);
    expect(seen.history.filter((h) => h.kind === 'soft_bounced').map((h) => h.essay)).toEqual([
      'soft-three-1',
      'soft-three-2',
      'soft-three-3',
    ]);
    expect(seen.history.at(-1)).toMatchObject({ kind: 'bounced', source: 'webhook', essay: 'soft-three-3' });

    const letters = await publishAndDrain('soft-three-after');
    expect(letters.get(email)).toBeUndefined();
    expect(letters.get(kept)).toBe(1);
  });

  it('soft bounces about the same letter count once (a provider reporting each retry)', async () => {
    const [email] = addresses('soft-same', 1) as [string];
    await seedSubscribers(s.database.db, 'confirmed', [email]);
    await publishAndDrain('soft-same-letter');
    for (const n of [1, 2, 3, 4]) await soft(email, `soft-same-${n}`);
    const seen = await detail(email);
    expect(seen.subscriber.status).toBe('confirmed');
    expect(seen.history.filter((h) => h.kind === 'soft_bounced')).toHaveLength(4);
  });

  it('a delivery reported in between starts the count again (Postmark Delivery, Resend transient bounces)', async () => {
    const [email] = addresses('soft-delivered', 1) as [string];
    await seedSubscribers(s.database.db, 'confirmed', [email]);
    await publishAndDrain('soft-delivered-1');
    await post('/webhooks/resend', resendRequest(keys, fixture('resend-bounced-transient', email)));
    await publishAndDrain('soft-delivered-2');
    await post('/webhooks/postmark', postmarkRequest(keys, fixture('postmark-soft-bounce', email)));
    const delivered = await post(
      '/webhooks/postmark',
      postmarkRequest(keys, fixture('postmark-delivery', email)),
    );
    expect(await delivered.json()).toMatchObject({ status: 'processed', type: 'Delivery' });
    await publishAndDrain('soft-delivered-3');
    await post('/webhooks/sendgrid', sendgridRequest(keys, fixture('sendgrid-blocked', email)));
    const seen = await detail(email);
    expect(seen.subscriber.status).toBe('confirmed');
    expect(seen.history.filter((h) => h.kind === 'soft_bounced').map((h) => h.source)).toEqual([
      'resend',
      'postmark',
      'sendgrid',
    ]);
  });
});

describe('the publisher sees bounces and complaints per send-out and per source', () => {
  it('GET /api/stats counts them by send-out and by source', async () => {
    const [a, b, c] = addresses('stats-reports', 3) as [string, string, string];
    await seedSubscribers(s.database.db, 'confirmed', [a, b, c]);
    await publishAndDrain('stats-reports');
    await post(...(hardBounce.mailgun as (e: string) => [string, RequestInit])(a));
    await post(...(complaint.sendgrid as (e: string) => [string, RequestInit])(b));
    await post('/webhooks/bounces', genericRequest(keys, { email: c, type: 'bounce', id: 'stats-soft' }));

    const res = await s.app.request('/api/stats?days=1&sendouts=1', { headers: auth });
    expect(res.status).toBe(200);
    const stats = (await res.json()) as StatsView;
    expect(stats.sendouts[0]).toMatchObject({
      slug: 'stats-reports',
      reports: { bounced: 1, softBounced: 1, complained: 1 },
    });
    const bySource = Object.fromEntries(stats.sources.map((x) => [x.source, x]));
    expect(bySource.mailgun?.bounced).toBeGreaterThanOrEqual(1);
    expect(bySource.sendgrid?.complained).toBeGreaterThanOrEqual(1);
    expect(bySource.webhook?.softBounced).toBeGreaterThanOrEqual(1);
  });

  it('the dashboard shows them per send-out and by source, and the subscriber page says who reported what', async () => {
    const [email] = addresses('dashboard-reports', 1) as [string];
    await seedSubscribers(s.database.db, 'confirmed', [email]);
    await publishAndDrain('dashboard-reports');
    await post(...(complaint.postmark as (e: string) => [string, RequestInit])(email));

    const admin = await signIn(s);
    const overview = await (await admin.get('/admin')).text();
    expect(overview).toMatch(
      /Reported since: 0 bounced, 0 soft bounces, 1 complaints \(\d+\.\d\d % of the letters sent/,
    );
    expect(overview).toMatch(/<th scope="row">postmark<\/th><td>\d+<\/td><td>\d+<\/td><td>[1-9]/);
    const page = await (await admin.get(`/admin/subscribers/${encodeURIComponent(email)}`)).text();
    expect(page).toContain('(postmark, dashboard-reports: SpamComplaint: Test spam complaint details)');
  });
});
