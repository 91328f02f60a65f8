import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rows } from '../src/db/client.js';
import type { SubscriberDetail } from '../src/list/schemas.js';
import { signIn } from './support/admin.js';
import { postForm } from './support/reader.js';
import type { TestService } from './support/service.js';
import { confirmTokenIn, createTestService, PUBLISHER_TOKEN } from './support/service.js';

/**
 * Issue 26: consent on record. Each subscription request keeps its time, the page it came from, the user
 * agent, the IP only when RECORD_SIGNUP_IP=true, and the consent text's version; the confirmation the same.
 * The publisher reads them through the API, the export and the dashboard; erasure removes them.
 */
const auth = { authorization: `Bearer ${PUBLISHER_TOKEN}` };
const BROWSER = 'Mozilla/5.0 (X11; Linux x86_64) ConsentTest/1.0';
const PHONE = 'Mozilla/5.0 (iPhone) ConfirmTest/2.0';

async function subscribeFromPage(s: TestService, email: string): Promise<void> {
  const res = await postForm(
    s,
    '/subscribe',
    { email },
    {
      referer: 'https://site.example/essays/on-walking?utm_source=letter#form',
      origin: 'https://site.example',
      'user-agent': BROWSER,
      'x-forwarded-for': '203.0.113.7',
    },
  );
  expect(res.status).toBe(303);
  await s.drain();
}

async function confirmFromPhone(s: TestService, email: string): Promise<void> {
  const token = confirmTokenIn(s.smtp.to(email).at(-1)?.parsed.text);
  const res = await s.app.request(`/confirm/${token}`, {
    method: 'POST',
    headers: { origin: 'https://news.example.test', 'user-agent': PHONE, 'x-forwarded-for': '198.51.100.4' },
  });
  expect(res.status).toBe(200);
}

async function detail(s: TestService, email: string): Promise<SubscriberDetail> {
  const res = await s.app.request(`/api/subscribers/${encodeURIComponent(email)}`, { headers: auth });
  expect(res.status).toBe(200);
  return (await res.json()) as SubscriberDetail;
}

describe('consent on record, IP not recorded (the default)', () => {
  let s: TestService;
  beforeAll(async () => {
    s = await createTestService({ TRUST_PROXY: 'true' });
  });
  afterAll(() => s.close());

  it('keeps the request and the confirmation: when, from which page, which browser, which text', async () => {
    await subscribeFromPage(s, 'consenting@example.org');
    await confirmFromPhone(s, 'consenting@example.org');
    const { consent, subscriber } = await detail(s, 'consenting@example.org');
    expect(consent).toHaveLength(1);
    const [record] = consent;
    expect(record).toMatchObject({
      // Origin and path only: a query string may carry someone's token.
      page: 'https://site.example/essays/on-walking',
      userAgent: BROWSER,
      ip: null,
      textVersion: expect.stringMatching(/^sha256:[0-9a-f]{16}$/),
      confirmation: {
        // The confirmation page's own address holds the token: only its origin is kept.
        page: 'https://news.example.test',
        userAgent: PHONE,
        ip: null,
        textVersion: record?.textVersion,
      },
    });
    expect(Date.parse(record?.requestedAt ?? '')).toBeLessThanOrEqual(
      Date.parse(record?.confirmation?.at ?? ''),
    );
    expect(record?.confirmation?.at).toBe(subscriber.confirmedAt);
  });

  it('keeps one record per request, and none for an imported subscriber', async () => {
    await subscribeFromPage(s, 'twice@example.org');
    expect((await s.subscribeJson('twice@example.org')).status).toBe(202);
    const { consent } = await detail(s, 'twice@example.org');
    expect(consent.map((r) => [r.page, r.confirmation])).toEqual([
      ['https://site.example/essays/on-walking', null],
      [null, null],
    ]);

    const imported = await s.app.request('/api/subscribers/import', {
      method: 'POST',
      headers: { ...auth, 'content-type': 'text/csv' },
      body: 'email,status\r\nimported@example.org,subscribed\r\n',
    });
    expect(imported.status).toBe(200);
    expect((await detail(s, 'imported@example.org')).consent).toEqual([]);
  });

  it('exports the consent as columns', async () => {
    const res = await s.app.request('/api/subscribers/export', { headers: auth });
    expect(res.status).toBe(200);
    const [header, ...lines] = (await res.text()).trim().split('\r\n');
    const columns = header?.split(',') ?? [];
    expect(columns).toEqual(
      expect.arrayContaining([
        'consent_requested_at',
        'consent_page',
        'consent_user_agent',
        'consent_ip',
        'consent_text_version',
        'consent_confirm_page',
        'consent_confirm_user_agent',
        'consent_confirm_ip',
        'consent_confirm_text_version',
      ]),
    );
    const line = lines.find((l) => l.startsWith('consenting@example.org,'))?.split(',') ?? [];
    const at = (name: string) => line[columns.indexOf(name)];
    expect(at('consent_page')).toBe('https://site.example/essays/on-walking');
    expect(at('consent_user_agent')).toBe(BROWSER);
    expect(at('consent_ip')).toBe('');
    expect(at('consent_confirm_user_agent')).toBe(PHONE);
    expect(at('consent_text_version')).toMatch(/^sha256:/);
  });

  it('shows the consent on the subscriber’s dashboard page', async () => {
    const admin = await signIn(s);
    const { subscriber } = await detail(s, 'consenting@example.org');
    const html = await (await admin.get(`/admin/subscribers/${subscriber.id}`)).text();
    expect(html).toContain('Consent on record');
    expect(html).toContain('https://site.example/essays/on-walking');
    expect(html).toContain(PHONE);
  });

  it('erasure removes the consent records with the subscriber', async () => {
    const res = await s.app.request('/api/subscribers/consenting@example.org', {
      method: 'DELETE',
      headers: auth,
    });
    expect(res.status).toBe(200);
    const left = await rows(
      s.database.db,
      sql`select 1 from confirmations where user_agent = ${BROWSER} or confirm_user_agent = ${PHONE}`,
    );
    // The other subscriber from the same page keeps theirs; nothing of the erased one is left.
    expect(left).toHaveLength(1);
    const again = await s.app.request('/api/subscribers/consenting@example.org', { headers: auth });
    expect(again.status).toBe(404);
  });
});

describe('consent on record with RECORD_SIGNUP_IP=true and CONSENT_TEXT_VERSION', () => {
  let s: TestService;
  beforeAll(async () => {
    s = await createTestService({
      TRUST_PROXY: 'true',
      RECORD_SIGNUP_IP: 'true',
      CONSENT_TEXT_VERSION: 'form-2026-12',
    });
  });
  afterAll(() => s.close());

  it('keeps the IP of the request and of the confirmation, and the version the operator named', async () => {
    await subscribeFromPage(s, 'with-ip@example.org');
    await confirmFromPhone(s, 'with-ip@example.org');
    const [record] = (await detail(s, 'with-ip@example.org')).consent;
    expect(record).toMatchObject({
      ip: '203.0.113.7',
      textVersion: 'form-2026-12',
      confirmation: { ip: '198.51.100.4', textVersion: 'form-2026-12' },
    });
  });
});
