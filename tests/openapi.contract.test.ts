import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CheckedCall, ContractCheck } from './support/contract.js';
import { contractCheck } from './support/contract.js';
import type { TestService } from './support/service.js';
import { confirmTokenIn, createTestService, PUBLISHER_TOKEN, unsubscribeTokenIn } from './support/service.js';
import type { SnsFixture } from './support/sns.js';
import { notification, sesBounce, sign, snsRequest, startFakeSns, TOPIC_ARN } from './support/sns.js';
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
 * The OpenAPI document tells the truth: every answer the service gives to the suite's kinds of calls — good
 * input, bad input, no or a wrong token, too large, too many — is one the document describes (status,
 * content type, body, headers), and every request a client may send by the document is valid by it, so a
 * client that validates against /openapi.json (Stoplight Prism here) refuses none of them.
 */

const SITE = 'https://site.example.test';
const BODY_LIMIT = 1024;
let s: TestService;
let sns: SnsFixture;
let api: ContractCheck;
let ipCount = 0;
let keys: ProviderKeys;

/** A client address of its own (TRUST_PROXY), so that each call's rate limits start from nothing. */
const freshIp = () => `198.51.100.${++ipCount}`;
const token = `Bearer ${PUBLISHER_TOKEN}`;
const JSON_TYPE = { 'content-type': 'application/json' };
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };
const BROWSER = { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' };
const WANTS_JSON = { accept: 'application/json' };

beforeAll(async () => {
  sns = await startFakeSns();
  const providers = makeProviderKeys();
  keys = providers.keys;
  s = await createTestService(
    {
      TRUST_PROXY: 'true',
      ALLOWED_ORIGINS: SITE,
      BODY_LIMIT_BYTES: String(BODY_LIMIT),
      IMPORT_LIMIT_BYTES: '2048',
      SUBSCRIBE_LIMIT_PER_IP: '3',
      WRONG_TOKEN_LIMIT_PER_IP: '3',
      SES_SNS_TOPIC_ARN: TOPIC_ARN,
      ...providers.env,
    },
    { fetch: sns.fetch },
  );
  api = await contractCheck(s);
});

afterAll(async () => {
  await s?.close();
  await sns?.close();
});

/** A call as a client that validates against the document would make it, with its own client address. */
function call(path: string, init: RequestInit = {}, validRequest = false): Promise<CheckedCall> {
  const headers = { 'x-forwarded-for': freshIp(), ...Object.fromEntries(new Headers(init.headers)) };
  return api.call(path, { ...init, headers }, { validRequest });
}

/** Expects the status and that the call matches the document. */
async function answers(checked: Promise<CheckedCall>, status: number, type?: RegExp): Promise<Response> {
  const { res, mismatches } = await checked;
  expect(mismatches, `${res.status} ${res.headers.get('content-type')}`).toEqual([]);
  expect(res.status).toBe(status);
  if (type) expect(res.headers.get('content-type')).toMatch(type);
  return res;
}

const postJson = (body: unknown, headers: Record<string, string> = {}) => ({
  method: 'POST',
  headers: { ...JSON_TYPE, ...headers },
  body: typeof body === 'string' ? body : JSON.stringify(body),
});
const postForm = (fields: Record<string, string>, headers: Record<string, string> = {}) => ({
  method: 'POST',
  headers: { ...FORM, ...BROWSER, ...headers },
  body: new URLSearchParams(fields).toString(),
});

describe('a reader subscribing', () => {
  it('as JSON, new and again, with a name: 202', async () => {
    const body = { email: 'json-reader@example.org', name: 'Ann Reader' };
    await answers(call('/subscribe', postJson(body), true), 202, /json/);
    await answers(call('/subscribe', postJson(body), true), 202, /json/);
  });

  it('as a form, with a name and a redirect, or as multipart: 303', async () => {
    const fields = { email: 'form-reader@example.org', name: 'Bo', redirect: `${SITE}/thanks` };
    await answers(call('/subscribe', postForm(fields), true), 303);
    const boundary = 'contract-boundary';
    const multipart = {
      method: 'POST',
      headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, ...BROWSER },
      body: `--${boundary}\r\nContent-Disposition: form-data; name="email"\r\n\r\nmultipart@example.org\r\n--${boundary}--\r\n`,
    };
    await answers(call('/subscribe', multipart, true), 303);
  });

  it('with an invalid address or name: 422, as JSON or as a page', async () => {
    await answers(call('/subscribe', postJson({ email: 'not-an-address' })), 422, /json/);
    await answers(call('/subscribe', postForm({ email: 'not-an-address' })), 422, /html/);
    const name = { email: 'named@example.org', name: 'Line\nbreak' };
    await answers(call('/subscribe', postJson(name)), 422, /json/);
  });

  it('with a redirect to another origin: 422', async () => {
    const fields = { email: 'redirected@example.org', redirect: 'https://elsewhere.example/' };
    await answers(call('/subscribe', postForm(fields)), 422, /html/);
  });

  it('with malformed JSON: 400', async () => {
    await answers(call('/subscribe', postJson('{"email":')), 400, /json/);
  });

  it('with a body of another type: 415, as a page or as JSON', async () => {
    const plain = { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'email=a@b.example' };
    await answers(call('/subscribe', plain), 415, /html/);
    await answers(
      call('/subscribe', { ...plain, headers: { ...plain.headers, ...WANTS_JSON } }),
      415,
      /json/,
    );
  });

  it('with a body over BODY_LIMIT_BYTES: 413', async () => {
    const big = { email: 'big@example.org', name: 'x'.repeat(BODY_LIMIT) };
    await answers(call('/subscribe', postJson(big)), 413, /json/);
    await answers(call('/subscribe', postForm(big)), 413, /html/);
  });

  it('too often from one client: 429 with Retry-After', async () => {
    const ip = { 'x-forwarded-for': '203.0.113.77' };
    for (let i = 0; i < 3; i++) {
      const body = postJson({ email: `often-${i}@example.org` }, ip);
      await answers(api.call('/subscribe', body, { validRequest: true }), 202);
    }
    const res = await answers(
      api.call('/subscribe', postJson({ email: 'often-x@example.org' }, ip)),
      429,
      /json/,
    );
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
    await answers(api.call('/subscribe', postForm({ email: 'often-y@example.org' }, ip)), 429, /html/);
  });
});

describe('a reader confirming and unsubscribing', () => {
  let confirmToken: string;
  let unsubscribeToken: string;

  beforeAll(async () => {
    await answers(call('/subscribe', postJson({ email: 'links@example.org' }), true), 202);
    await s.drain();
    confirmToken = confirmTokenIn(s.smtp.to('links@example.org')[0]?.parsed.text);
  });

  it('GET /confirm/{token} shows a page; POST confirms, as a page or as JSON, twice', async () => {
    await answers(call(`/confirm/${confirmToken}`, { headers: BROWSER }, true), 200, /html/);
    const button = { method: 'POST', headers: { ...FORM, ...BROWSER }, body: '' };
    await answers(call(`/confirm/${confirmToken}`, button, true), 200, /html/);
    const asJson = { method: 'POST', headers: WANTS_JSON };
    await answers(call(`/confirm/${confirmToken}`, asJson, true), 200, /json/);
  });

  it('an unknown or expired confirmation link: 404 or 410', async () => {
    const unknown = 'A'.repeat(43);
    await answers(call(`/confirm/${unknown}`, { headers: BROWSER }, true), 404, /html/);
    await answers(call(`/confirm/${unknown}`, { method: 'POST', headers: WANTS_JSON }, true), 404, /json/);
    await answers(call('/subscribe', postJson({ email: 'late@example.org' }), true), 202);
    await s.drain();
    const late = confirmTokenIn(s.smtp.to('late@example.org')[0]?.parsed.text);
    await s.database.db.execute(sql`update confirmations set expires_at = now() - interval '1 hour'`);
    await answers(call(`/confirm/${late}`, { headers: BROWSER }, true), 410, /html/);
    await answers(call(`/confirm/${late}`, { method: 'POST', headers: WANTS_JSON }, true), 410, /json/);
  });

  it('GET /unsubscribe/{token} shows a page; the RFC 8058 one-click POST unsubscribes: 200', async () => {
    const published = await s.publish({ slug: 'contract', title: 'Contract', url: `${SITE}/contract` });
    expect(published.status).toBe(202);
    await s.drain();
    unsubscribeToken = unsubscribeTokenIn(s.smtp.to('links@example.org').at(-1)?.parsed.text);
    await answers(call(`/unsubscribe/${unsubscribeToken}`, { headers: BROWSER }, true), 200, /html/);
    // As a mail client sends it (RFC 8058 §3.2): the body, and no Accept header of a browser.
    const oneClick = { method: 'POST', headers: FORM, body: 'List-Unsubscribe=One-Click' };
    await answers(call(`/unsubscribe/${unsubscribeToken}`, oneClick, true), 200, /html/);
    await answers(
      call(`/unsubscribe/${unsubscribeToken}`, { ...oneClick, headers: { ...FORM, ...WANTS_JSON } }, true),
      200,
      /json/,
    );
    const unknown = `/unsubscribe/${'B'.repeat(43)}`;
    await answers(call(unknown, oneClick, true), 404, /html/);
    await answers(call(unknown, { method: 'POST', headers: WANTS_JSON }, true), 404, /json/);
  });

  it('a one-click POST over BODY_LIMIT_BYTES: 413', async () => {
    const big = {
      method: 'POST',
      headers: FORM,
      body: `List-Unsubscribe=One-Click&x=${'x'.repeat(BODY_LIMIT)}`,
    };
    await answers(call(`/unsubscribe/${unsubscribeToken}`, big), 413, /html/);
  });
});

describe('the operations and pages', () => {
  it('health, readiness, the form and the check-your-inbox page', async () => {
    await answers(call('/healthz', {}, true), 200, /json/);
    await answers(call('/readyz', {}, true), 200, /json/);
    await answers(call('/form', { headers: BROWSER }, true), 200, /html/);
    await answers(call('/check-inbox', { headers: BROWSER }, true), 200, /html/);
  });
});

/** Every publisher route, with a good request. */
const publisherCalls: [string, RequestInit][] = [
  ['/api/essays', postJson({ slug: 'any', title: 'Any', url: `${SITE}/any` })],
  ['/api/essays/any', {}],
  ['/api/essays/any/resend-unknown', { method: 'POST' }],
  ['/api/feed/entries/an-entry/send', { method: 'POST' }],
  ['/api/subscribers', {}],
  ['/api/subscribers/export', {}],
  ['/api/subscribers/import', { method: 'POST', headers: { 'content-type': 'text/csv' }, body: 'email\n' }],
  ['/api/subscribers/someone%40example.org', {}],
  ['/api/subscribers/someone%40example.org', { method: 'DELETE' }],
  ['/api/stats', {}],
];

const withToken = (init: RequestInit, value = token): RequestInit => ({
  ...init,
  headers: { ...Object.fromEntries(new Headers(init.headers)), authorization: value },
});

describe('the publisher API', () => {
  it('publishes, looks up and resends with good input: 202, 200', async () => {
    const essay = {
      slug: 'On-Contracts',
      title: 'On contracts',
      url: `${SITE}/on-contracts`,
      summary: 'Kept.',
    };
    await answers(call('/api/essays', withToken(postJson(essay)), true), 202, /json/);
    await answers(call('/api/essays', withToken(postJson(essay)), true), 200, /json/);
    await answers(call('/api/essays/on-contracts', withToken({}), true), 200, /json/);
    await answers(call('/api/essays/on-contracts/resend-unknown', withToken({ method: 'POST' }), true), 200);
  });

  it('refuses bad essays: 422, 400, 415, 413, 404', async () => {
    const bad = { slug: '-bad slug', title: 'T', url: `${SITE}/t` };
    await answers(call('/api/essays', withToken(postJson(bad))), 422, /json/);
    const controls = { slug: 'controls', title: 'A\u0001title', url: `${SITE}/t` };
    await answers(call('/api/essays', withToken(postJson(controls))), 422, /json/);
    await answers(call('/api/essays', withToken(postJson('{"slug":'))), 400, /json/);
    const plain = { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'slug=x' };
    await answers(call('/api/essays', withToken(plain)), 415, /json/);
    const big = { slug: 'big', title: 'Big', url: `${SITE}/big`, summary: 'x'.repeat(BODY_LIMIT) };
    await answers(call('/api/essays', withToken(postJson(big))), 413, /json/);
    await answers(call('/api/essays/no-such-essay', withToken({}), true), 404, /json/);
    await answers(call('/api/essays/no-such-essay/resend-unknown', withToken({ method: 'POST' }), true), 404);
    await answers(call('/api/feed/entries/an-entry/send', withToken({ method: 'POST' }), true), 404, /json/);
  });

  it('the subscriber list, export, import, detail, erasure and stats with good input: 200', async () => {
    await answers(call('/api/subscribers?status=confirmed&limit=10', withToken({}), true), 200, /json/);
    await answers(call('/api/subscribers/export?since=2020-01-01', withToken({}), true), 200, /csv/);
    const csv = {
      method: 'POST',
      headers: { 'content-type': 'text/csv' },
      body: 'email,name\nimported@example.org,Imp\n',
    };
    await answers(call('/api/subscribers/import', withToken(csv), true), 200, /json/);
    await answers(call('/api/subscribers/imported%40example.org', withToken({}), true), 200, /json/);
    await answers(
      call('/api/subscribers/imported%40example.org', withToken({ method: 'DELETE' }), true),
      200,
    );
    await answers(call('/api/stats?days=7&sendouts=5', withToken({}), true), 200, /json/);
  });

  it('the subscriber routes with bad input: 422, 400, 415, 413, 404', async () => {
    await answers(call('/api/subscribers?limit=0', withToken({})), 422, /json/);
    await answers(call('/api/subscribers?cursor=not-a-cursor', withToken({})), 400, /json/);
    await answers(call('/api/subscribers/export?since=yesterday', withToken({})), 422, /json/);
    await answers(call('/api/stats?days=0', withToken({})), 422, /json/);
    const json = postJson({ email: 'x@example.org' });
    await answers(call('/api/subscribers/import', withToken(json)), 415, /json/);
    const noEmail = { method: 'POST', headers: { 'content-type': 'text/csv' }, body: 'name\nAda\n' };
    await answers(call('/api/subscribers/import', withToken(noEmail), true), 422, /json/);
    const big = {
      method: 'POST',
      headers: { 'content-type': 'text/csv' },
      body: `email\n${'a@example.org\n'.repeat(400)}`,
    };
    await answers(call('/api/subscribers/import', withToken(big), true), 413, /json/);
    await answers(call('/api/subscribers/nobody%40example.org', withToken({}), true), 404, /json/);
    await answers(call('/api/subscribers/nobody%40example.org', withToken({ method: 'DELETE' }), true), 404);
    await answers(call(`/api/subscribers/${'x'.repeat(300)}`, withToken({})), 422, /json/);
  });

  it('every route without a token or with a wrong one: 401', async () => {
    for (const [path, init] of publisherCalls) {
      await answers(call(path, init), 401, /json/);
      await answers(call(path, withToken(init, 'Bearer wrong-token')), 401, /json/);
    }
  });

  it('every route, from a client that sent too many wrong tokens: 429 with Retry-After, the right token too', async () => {
    const ip = { 'x-forwarded-for': '203.0.113.88' };
    const from = (init: RequestInit, value?: string) => {
      const authorized = withToken(init, value);
      return { ...authorized, headers: { ...Object.fromEntries(new Headers(authorized.headers)), ...ip } };
    };
    for (let i = 0; i < 3; i++) {
      await answers(api.call('/api/stats', from({}, 'Bearer wrong-token')), 401);
    }
    await answers(api.call('/api/stats', from({}, 'Bearer wrong-token')), 429);
    for (const [path, init] of publisherCalls) {
      const res = await answers(api.call(path, from(init)), 429, /json/);
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
    }
  });
});

describe('the SES webhook', () => {
  it('a signed bounce: 200; not an SNS message: 400; another topic: 401; too large: 413', async () => {
    const bounce = sign(notification(sesBounce(['bounced@example.org'])), sns.privateKeyPem);
    await answers(call('/webhooks/ses', snsRequest(bounce), true), 200, /json/);
    await answers(call('/webhooks/ses', snsRequest({}, 'not json')), 400, /json/);
    const elsewhere = sign(
      notification(sesBounce(['x@example.org']), { TopicArn: `${TOPIC_ARN}-other` }),
      sns.privateKeyPem,
    );
    await answers(call('/webhooks/ses', snsRequest(elsewhere)), 401, /json/);
    await answers(call('/webhooks/ses', snsRequest(bounce, 'x'.repeat(1024 * 1024 + 1))), 413, /json/);
  });
});

describe('the provider webhooks', () => {
  it('signed events: 200; unsigned: 401; signed but not an event: 422; not JSON: 400; too large: 413', async () => {
    const email = 'bounced@example.org';
    const signed: [string, RequestInit][] = [
      ['/webhooks/resend', resendRequest(keys, fixture('resend-bounced', email))],
      ['/webhooks/postmark', postmarkRequest(keys, fixture('postmark-bounce', email))],
      ['/webhooks/mailgun', jsonRequest(mailgunBody(keys, fixture('mailgun-failed-permanent', email)))],
      ['/webhooks/sendgrid', sendgridRequest(keys, fixture('sendgrid-events', email))],
      ['/webhooks/bounces', genericRequest(keys, { email, type: 'bounce', permanent: true })],
    ];
    for (const [path, init] of signed) {
      await answers(call(path, init, true), 200, /json/);
      await answers(call(path, jsonRequest(String(init.body))), 401, /json/);
    }
    await answers(call('/webhooks/bounces', genericRequest(keys, { email, type: 'opened' })), 422, /json/);
    await answers(call('/webhooks/resend', resendRequest(keys, '{"type":')), 400, /json/);
    await answers(call('/webhooks/bounces', genericRequest(keys, 'x'.repeat(1024 * 1024 + 1))), 413, /json/);
  });
});

describe('the check itself', () => {
  it('catches an answer the document does not describe', async () => {
    // The document as it was before 413 was described for POST /api/essays.
    const strict = await contractCheck(s, (doc) => {
      const paths = doc.paths as Record<string, { post: { responses: Record<string, unknown> } }>;
      delete paths['/api/essays']?.post.responses['413'];
    });
    const big = { slug: 'big', title: 'Big', url: `${SITE}/big`, summary: 'x'.repeat(BODY_LIMIT) };
    const { res, mismatches } = await strict.call('/api/essays', withToken(postJson(big)));
    expect(res.status).toBe(413);
    expect(mismatches.join('\n')).toMatch(/status code/);
  });

  it('catches a request the document would refuse', async () => {
    // A pattern with a regex flag, as zod-to-openapi wrote it: no name matches it.
    const flagged = await contractCheck(s, (doc) => {
      const schemas = (doc.components as { schemas: Record<string, { properties: Record<string, object> }> })
        .schemas;
      Object.assign(schemas.Subscription?.properties.name ?? {}, { pattern: '^[^\\p{Cc}]*$/u' });
    });
    const body = postJson({ email: 'flagged@example.org', name: 'Ann' }, { 'x-forwarded-for': freshIp() });
    const { mismatches } = await flagged.call('/subscribe', body, { validRequest: true });
    expect(mismatches.join('\n')).toMatch(/pattern/);
  });
});
