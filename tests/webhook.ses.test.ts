import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../src/app.js';
import type { SnsMessage } from '../src/bounces/sns.js';
import { CERT_CACHE_TTL_MS, createCertificateCache, createSnsVerifier } from '../src/bounces/sns.js';
import type { StatsView, SubscriberView } from '../src/list/schemas.js';
import type { Logger } from '../src/log.js';
import { createRenderer } from '../src/mail/render.js';
import { loadTemplates } from '../src/mail/templates-fs.js';
import { addresses, deliveriesOf, lettersPerAddress, seedSubscribers } from './support/sendout.js';
import type { TestService } from './support/service.js';
import { createTestService, PUBLISHER_TOKEN } from './support/service.js';
import type { SnsFields, SnsFixture } from './support/sns.js';
import {
  freshCertPath,
  notification,
  REGION,
  SECOND_CERT_PATH,
  SNS_ORIGIN,
  sesBounce,
  sesComplaint,
  sesDelivery,
  sign,
  snsRequest,
  startFakeSns,
  subscriptionConfirmation,
  TOPIC_ARN,
} from './support/sns.js';

/**
 * Amazon SES bounces and complaints, delivered through SNS, signed as SNS signs them: a hard bounce or a
 * complaint stops all future mail to the address, and the publisher sees it.
 */

let s: TestService;
let sns: SnsFixture;
const logLines: string[] = [];
const log: Logger = {
  info: (f) => logLines.push(JSON.stringify(f)),
  warn: (f) => logLines.push(JSON.stringify(f)),
  error: (f) => logLines.push(JSON.stringify(f)),
};

beforeAll(async () => {
  sns = await startFakeSns();
  s = await createTestService({ SES_SNS_TOPIC_ARN: TOPIC_ARN }, { fetch: sns.fetch, log });
});

afterAll(async () => {
  await s?.close();
  await sns?.close();
});

const post = (m: SnsFields) => s.app.request('/webhooks/ses', snsRequest(m));
const signed = (message: unknown, version: '1' | '2' = '1') =>
  sign(notification(message), sns.privateKeyPem, version);
const auth = { authorization: `Bearer ${PUBLISHER_TOKEN}` };

const detail = (email: string) => s.detail(email);

async function listed(status: string): Promise<string[]> {
  const res = await s.app.request(`/api/subscribers?status=${status}&limit=500`, { headers: auth });
  expect(res.status).toBe(200);
  const page = (await res.json()) as { subscribers: SubscriberView[] };
  return page.subscribers.map((x) => x.email);
}

async function publishAndDrain(slug: string, title: string): Promise<Map<string, number>> {
  const res = await s.publish({ slug, title, url: `https://example.org/essays/${slug}` });
  expect(res.status).toBe(202);
  await s.drain();
  return lettersPerAddress(s.smtp.received, title);
}

describe('a hard bounce stops all mail to the address, as an SMTP 5xx answer does', () => {
  it('a signed permanent bounce (SignatureVersion 1) marks the subscriber bounced, visible in the publisher API', async () => {
    const [gone, kept] = addresses('hard-bounce', 2) as [string, string];
    await seedSubscribers(s.database.db, 'confirmed', [gone, kept]);

    // SES reports the address as the receiving server wrote it: compared without case.
    const res = await post(signed(sesBounce([gone.toUpperCase()]), '1'));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'processed', type: 'Bounce', changed: 1 });

    const seen = await detail(gone);
    expect(seen.subscriber.status).toBe('bounced');
    expect(seen.subscriber.bouncedAt).not.toBeNull();
    expect(seen.history.map((h) => h.kind)).toContain('bounced');
    expect(await listed('bounced')).toContain(gone);
    expect((await detail(kept)).subscriber.status).toBe('confirmed');

    const letters = await publishAndDrain('after-hard-bounce', 'After a hard bounce');
    expect(letters.get(gone)).toBeUndefined();
    expect(letters.get(kept)).toBe(1);
  });

  it('SignatureVersion 2 (SHA256withRSA) and SES event publishing (eventType) are accepted as well', async () => {
    const [gone] = addresses('event-bounce', 1) as [string];
    await seedSubscribers(s.database.db, 'confirmed', [gone]);
    const res = await post(signed(sesBounce([gone], 'Permanent', 'eventType'), '2'));
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: 'processed', changed: 1 });
    expect((await detail(gone)).subscriber.status).toBe('bounced');
  });

  it('a pending subscriber whose confirmation email bounced for good is suppressed too', async () => {
    const [pending] = addresses('pending-bounce', 1) as [string];
    await seedSubscribers(s.database.db, 'pending', [pending]);
    expect((await post(signed(sesBounce([pending])))).status).toBe(200);
    expect((await detail(pending)).subscriber.status).toBe('bounced');
  });

  it('the same bounce delivered again (SNS retries) changes nothing more', async () => {
    const [gone] = addresses('repeat-bounce', 1) as [string];
    await seedSubscribers(s.database.db, 'confirmed', [gone]);
    const message = signed(sesBounce([gone]));
    expect(await (await post(message)).json()).toMatchObject({ changed: 1 });
    const first = await detail(gone);
    const again = await post(message);
    expect(again.status).toBe(200);
    expect(await again.json()).toMatchObject({ changed: 0 });
    expect(await detail(gone)).toEqual(first);
  });

  it('a transient or undetermined bounce is a soft bounce: recorded in the history, the address kept', async () => {
    const [mailboxFull, unclear] = addresses('soft-bounce', 2) as [string, string];
    await seedSubscribers(s.database.db, 'confirmed', [mailboxFull, unclear]);
    const before = [await detail(mailboxFull), await detail(unclear)];

    const transient = await post(signed(sesBounce([mailboxFull], 'Transient')));
    expect(transient.status).toBe(200);
    expect(await transient.json()).toMatchObject({ changed: 0 });
    const undetermined = await post(signed(sesBounce([unclear], 'Undetermined'), '2'));
    expect(undetermined.status).toBe(200);
    expect(await undetermined.json()).toMatchObject({ changed: 0 });

    const after = [await detail(mailboxFull), await detail(unclear)];
    for (const [i, seen] of after.entries()) {
      expect(seen.subscriber).toEqual(before[i]?.subscriber);
      expect(seen.history.at(-1)).toMatchObject({ kind: 'soft_bounced', source: 'ses' });
    }
    expect(after[0]?.history.at(-1)?.reason).toMatch(/^Transient/);
  });

  it('addresses the list does not hold are reported and nothing else happens', async () => {
    const res = await post(signed(sesBounce(['stranger@example.org'])));
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: 'processed', changed: 0 });
  });
});

describe('a complaint unsubscribes the reader: no more essays', () => {
  it('after a complaint the reader gets no essay, the others do, and their history says why', async () => {
    const [complainer, ...others] = addresses('complaint', 3) as [string, string, string];
    await seedSubscribers(s.database.db, 'confirmed', [complainer, ...others]);

    const res = await post(signed(sesComplaint([complainer])));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'processed', type: 'Complaint', changed: 1 });

    const seen = await detail(complainer);
    expect(seen.subscriber.status).toBe('unsubscribed');
    expect(seen.subscriber.unsubscribedAt).not.toBeNull();
    const kinds = seen.history.map((h) => h.kind);
    expect(kinds.slice(-2)).toEqual(['complained', 'unsubscribed']);
    expect(await listed('unsubscribed')).toContain(complainer);

    const letters = await publishAndDrain('after-complaint', 'After a complaint');
    expect(letters.get(complainer)).toBeUndefined();
    for (const other of others) expect(letters.get(other)).toBe(1);
  });

  it('a complaint during a send-out stops the letter not yet sent to that reader', async () => {
    const [complainer, ...others] = addresses('mid-sendout', 4) as [string, string, string, string];
    await seedSubscribers(s.database.db, 'confirmed', [complainer, ...others]);
    const title = 'Complained about mid send-out';
    const res = await s.publish({
      slug: 'mid-sendout',
      title,
      url: 'https://example.org/essays/mid-sendout',
    });
    expect(res.status).toBe(202);

    expect((await post(signed(sesComplaint([complainer]), '2'))).status).toBe(200);
    await s.drain();

    const letters = lettersPerAddress(s.smtp.received, title);
    expect(letters.get(complainer)).toBeUndefined();
    for (const other of others) expect(letters.get(other)).toBe(1);
    const ledger = await deliveriesOf(s.database.db, 'mid-sendout');
    expect(ledger.find((d) => d.email === complainer)?.status).toBe('skipped');
  });

  it('a "not-spam" feedback report changes nothing', async () => {
    const [reader] = addresses('not-spam', 1) as [string];
    await seedSubscribers(s.database.db, 'confirmed', [reader]);
    const before = await detail(reader);
    const res = await post(signed(sesComplaint([reader], 'not-spam')));
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ changed: 0 });
    expect(await detail(reader)).toEqual(before);
  });

  it('the same complaint delivered again (SNS retries) adds no second event', async () => {
    const [complainer] = addresses('repeat-complaint', 1) as [string];
    await seedSubscribers(s.database.db, 'confirmed', [complainer]);
    const message = signed(sesComplaint([complainer]));
    expect(await (await post(message)).json()).toMatchObject({ changed: 1 });
    const first = await detail(complainer);
    expect(first.history.filter((h) => h.kind === 'complained')).toHaveLength(1);

    const again = await post(message);
    expect(again.status).toBe(200);
    expect(await again.json()).toMatchObject({ changed: 0 });
    expect(await detail(complainer)).toEqual(first);
  });
});

describe('a complaint about someone who already left is kept in their history', () => {
  // Complaints often arrive days after the letter, when the reader has unsubscribed or bounced meanwhile.
  for (const status of ['unsubscribed', 'bounced'] as const) {
    it(`a complaint about a ${status} reader shows in their history and leaves them ${status}`, async () => {
      const [gone] = addresses(`late-complaint-${status}`, 1) as [string];
      await seedSubscribers(s.database.db, status, [gone]);
      const before = await detail(gone);

      const res = await post(signed(sesComplaint([gone])));
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ status: 'processed', type: 'Complaint', changed: 0 });

      const after = await detail(gone);
      expect(after.subscriber).toEqual(before.subscriber);
      expect(after.history.map((h) => h.kind)).toEqual([...before.history.map((h) => h.kind), 'complained']);
    });
  }

  it('the same late complaint delivered again adds no second event', async () => {
    const [gone] = addresses('late-complaint-repeat', 1) as [string];
    await seedSubscribers(s.database.db, 'unsubscribed', [gone]);
    const message = signed(sesComplaint([gone]), '2');
    expect((await post(message)).status).toBe(200);
    const first = await detail(gone);
    expect(first.history.filter((h) => h.kind === 'complained')).toHaveLength(1);

    expect((await post(message)).status).toBe(200);
    expect(await detail(gone)).toEqual(first);
  });

  it('a "not-spam" report about an unsubscribed reader adds nothing', async () => {
    const [gone] = addresses('late-not-spam', 1) as [string];
    await seedSubscribers(s.database.db, 'unsubscribed', [gone]);
    const before = await detail(gone);
    expect((await post(signed(sesComplaint([gone], 'not-spam')))).status).toBe(200);
    expect(await detail(gone)).toEqual(before);
  });
});

describe('the publisher sees complaints as their own figure', () => {
  const stats = async (): Promise<StatsView> => {
    const res = await s.app.request('/api/stats?days=1&sendouts=0', { headers: auth });
    expect(res.status).toBe(200);
    return (await res.json()) as StatsView;
  };

  it('GET /api/stats counts complaints apart from unsubscribes, including those about readers who had left', async () => {
    const [subscribed, alreadyGone] = addresses('stats-complaint', 2) as [string, string];
    await seedSubscribers(s.database.db, 'confirmed', [subscribed]);
    await seedSubscribers(s.database.db, 'unsubscribed', [alreadyGone]);
    const before = await stats();

    expect((await post(signed(sesComplaint([subscribed, alreadyGone])))).status).toBe(200);
    const after = await stats();

    expect(after.complained).toBe(before.complained + 2);
    expect(after.growth.at(-1)?.complained).toBe((before.growth.at(-1)?.complained ?? 0) + 2);
    // Only the reader who was still subscribed left the list today.
    expect(after.growth.at(-1)?.unsubscribed).toBe((before.growth.at(-1)?.unsubscribed ?? 0) + 1);
    expect(after.subscribers.unsubscribed).toBe(before.subscribers.unsubscribed + 1);
    expect(after.subscribers.total).toBe(before.subscribers.total);
  });

  it('the OpenAPI document describes the complaint figures', async () => {
    const doc = (await (await s.app.request('/openapi.json')).json()) as {
      components: {
        schemas: Record<string, { properties: Record<string, { items?: { properties: object } }> }>;
      };
    };
    const stats = doc.components.schemas.Stats;
    expect(stats?.properties).toHaveProperty('complained');
    expect(stats?.properties.growth?.items?.properties).toHaveProperty('complained');
  });
});

describe('the signing certificate is fetched once per process, not once per message', () => {
  const certUrl = `${SNS_ORIGIN}${SECOND_CERT_PATH}`;
  const fetchesOf = (path: string) => sns.requests.filter((r) => r === `GET ${path}`).length;
  /** The app as a Worker builds it: anew for each request, with nothing carried over but modules. */
  const appForOneRequest = () =>
    createApp({
      config: s.config,
      database: s.database,
      renderer: createRenderer(loadTemplates()),
      log,
      fetch: sns.fetch,
    });

  it('two messages signed with the same certificate, each to an app built for its request, fetch it once', async () => {
    const [a, b] = addresses('per-request-app', 2) as [string, string];
    await seedSubscribers(s.database.db, 'confirmed', [a, b]);
    expect(fetchesOf(SECOND_CERT_PATH)).toBe(0);

    for (const [reader, version] of [
      [a, '1'],
      [b, '2'],
    ] as const) {
      const m = sign(
        notification(sesBounce([reader]), { SigningCertURL: certUrl }),
        sns.privateKeyPem,
        version,
      );
      const res = await appForOneRequest().request('/webhooks/ses', snsRequest(m));
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ changed: 1 });
    }
    expect(fetchesOf(SECOND_CERT_PATH)).toBe(1);
  });

  it('a different certificate address is still held to the same host rules, and fetched for itself', async () => {
    // The certificate above is cached; the same path elsewhere is another URL, refused before any fetch.
    const [reader] = addresses('cert-elsewhere', 1) as [string];
    await seedSubscribers(s.database.db, 'confirmed', [reader]);
    const before = await detail(reader);
    for (const elsewhere of [
      `https://sns.${REGION}.amazonaws.com.evil.example${SECOND_CERT_PATH}`,
      `http://sns.${REGION}.amazonaws.com${SECOND_CERT_PATH}`,
    ]) {
      const m = sign(notification(sesBounce([reader]), { SigningCertURL: elsewhere }), sns.privateKeyPem);
      const res = await appForOneRequest().request('/webhooks/ses', snsRequest(m));
      expect(res.status, elsewhere).toBe(401);
      expect(await res.json()).toMatchObject({ error: { code: 'signature_invalid' } });
    }
    expect(sns.foreignFetches).toEqual([]);

    // Another of Amazon's addresses is fetched (once) and checked on its own: our key did not sign for it.
    const otherPath = freshCertPath('other');
    const other = sign(
      notification(sesBounce([reader]), { SigningCertURL: `${SNS_ORIGIN}${otherPath}` }),
      sns.privateKeyPem,
    );
    expect((await appForOneRequest().request('/webhooks/ses', snsRequest(other))).status).toBe(401);
    expect(fetchesOf(otherPath)).toBe(1);
    expect(await detail(reader)).toEqual(before);
  });

  it('a cached certificate is fetched again after an hour', async () => {
    let clock = Date.now();
    const verify = createSnsVerifier({
      fetch: sns.fetch,
      now: () => clock,
      certificates: createCertificateCache(),
    });
    const message = () =>
      sign(
        notification(sesBounce(['clock@example.org']), {
          SigningCertURL: certUrl,
          Timestamp: new Date(clock).toISOString(),
        }),
        sns.privateKeyPem,
      ) as unknown as SnsMessage;
    const before = fetchesOf(SECOND_CERT_PATH);
    await verify(message());
    clock += CERT_CACHE_TTL_MS / 2;
    await verify(message());
    expect(fetchesOf(SECOND_CERT_PATH)).toBe(before + 1);
    clock += CERT_CACHE_TTL_MS / 2 + 1;
    await verify(message());
    expect(fetchesOf(SECOND_CERT_PATH)).toBe(before + 2);
  });

  it('the cache holds a bounded number of certificates, dropping the least recently used', async () => {
    const cache = createCertificateCache(2);
    const loads: string[] = [];
    const get = (url: string) =>
      cache.get(url, Date.now(), async () => {
        loads.push(url);
        return new Uint8Array(1);
      });
    for (const url of ['a', 'b', 'a', 'c', 'a', 'b']) await get(url);
    // `a` was used again before `c` came, so `b` was the one dropped.
    expect(loads).toEqual(['a', 'b', 'c', 'b']);
  });

  it('a failed fetch is not kept: the next message fetches again', async () => {
    const cache = createCertificateCache();
    let attempts = 0;
    const load = async () => {
      attempts++;
      if (attempts === 1) throw new Error('Amazon answered 500');
      return new Uint8Array(1);
    };
    await expect(cache.get('u', Date.now(), load)).rejects.toThrow('500');
    await expect(cache.get('u', Date.now(), load)).resolves.toHaveLength(1);
    await expect(cache.get('u', Date.now(), load)).resolves.toHaveLength(1);
    expect(attempts).toBe(2);
  });
});

describe('other messages on the topic', () => {
  it('delivery notifications and SES’s plain-text test message are accepted and change nothing', async () => {
    const [reader] = addresses('delivered', 1) as [string];
    await seedSubscribers(s.database.db, 'confirmed', [reader]);
    const before = await detail(reader);

    const delivery = await post(signed(sesDelivery([reader])));
    expect(delivery.status).toBe(200);
    expect(await delivery.json()).toMatchObject({ status: 'processed', type: 'Delivery', changed: 0 });
    const setup = await post(signed('Successfully validated SNS topic for Amazon SES event publishing.'));
    expect(setup.status).toBe(200);
    expect(await setup.json()).toMatchObject({ status: 'ignored' });

    expect(await detail(reader)).toEqual(before);
  });

  it('a signed SubscriptionConfirmation is confirmed by visiting its SubscribeURL', async () => {
    const confirmation = sign(subscriptionConfirmation(), sns.privateKeyPem, '1');
    const visitsBefore = sns.requests.filter((r) => r.includes('Action=ConfirmSubscription')).length;
    const res = await post(confirmation);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'confirmed' });
    const visits = sns.requests.filter((r) => r.includes('Action=ConfirmSubscription'));
    expect(visits).toHaveLength(visitsBefore + 1);
    expect(visits.at(-1)).toContain(`Token=${confirmation.Token}`);
    expect(logLines.some((l) => l.includes('sns subscription confirmed'))).toBe(true);
  });

  it('a signed UnsubscribeConfirmation is noted and visits nothing', async () => {
    const requestsBefore = sns.requests.length;
    const m = sign(
      subscriptionConfirmation({
        Type: 'UnsubscribeConfirmation',
        Message: `You have chosen to deactivate subscription ${TOPIC_ARN}.`,
      }),
      sns.privateKeyPem,
      '2',
    );
    const res = await post(m);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'noted' });
    expect(sns.requests.slice(requestsBefore).some((r) => r.includes('ConfirmSubscription'))).toBe(false);
  });

  it('the signing certificate is fetched once and kept in memory', async () => {
    const [a, b] = addresses('cached-cert', 2) as [string, string];
    await seedSubscribers(s.database.db, 'confirmed', [a, b]);
    // An address this process has not fetched yet (earlier test files in this worker have fetched CERT_PATH).
    const path = freshCertPath();
    const at = (message: unknown) =>
      sign(notification(message, { SigningCertURL: `${SNS_ORIGIN}${path}` }), sns.privateKeyPem);
    expect((await post(at(sesBounce([a])))).status).toBe(200);
    const fetches = () => sns.requests.filter((r) => r === `GET ${path}`).length;
    expect(fetches()).toBe(1);
    expect((await post(at(sesBounce([b])))).status).toBe(200);
    expect(fetches()).toBe(1);
    expect(sns.foreignFetches).toEqual([]);
  });

  it('a notification larger than BODY_LIMIT_BYTES (SES includes the original headers) is accepted', async () => {
    const [big] = addresses('big-headers', 1) as [string];
    await seedSubscribers(s.database.db, 'confirmed', [big]);
    const message = sesBounce([big]);
    const headers = Array.from({ length: 400 }, (_, i) => ({
      name: `X-Header-${i}`,
      value: 'v'.repeat(200),
    }));
    const body = snsRequest(signed({ ...message, mail: { ...message.mail, headers } }));
    expect(String(body.body).length).toBeGreaterThan(s.config.bodyLimitBytes * 4);
    const res = await s.app.request('/webhooks/ses', body);
    expect(res.status).toBe(200);
    expect((await detail(big)).subscriber.status).toBe('bounced');
  });

  it('the OpenAPI document describes the endpoint', async () => {
    const doc = (await (await s.app.request('/openapi.json')).json()) as { paths: Record<string, unknown> };
    expect(doc.paths['/webhooks/ses']).toHaveProperty('post');
  });

  it('the logs name no full address', async () => {
    const [secret] = addresses('log-check', 1) as [string];
    await seedSubscribers(s.database.db, 'confirmed', [secret]);
    await post(signed(sesComplaint([secret])));
    const logs = logLines.join('\n');
    expect(logs).toContain('ses complaint');
    expect(logs).toContain('l***@example.org');
    expect(logs).not.toContain('log-check-0000');
    expect(logs).not.toMatch(/hard-bounce-\d{4}@/);
  });
});
