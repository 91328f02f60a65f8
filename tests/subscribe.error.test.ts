import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorIn, postForm, postJson, subscribersFor, tableCounts } from './support/reader.js';
import type { TestService } from './support/service.js';
import { createTestService, PUBLIC_URL } from './support/service.js';

interface BadRequest {
  what: string;
  send: (headers: Record<string, string>) => Promise<Response>;
  status: number;
  code: string;
  /** JSON bodies are answered in JSON whatever the Accept header says. */
  alwaysJson?: boolean;
}

const JSON_CLIENT = { accept: 'application/json' };
const BROWSER = { accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' };

describe('a subscription the service cannot take', () => {
  let s: TestService;
  beforeAll(async () => {
    s = await createTestService();
  });
  afterAll(() => s?.close());

  const raw = (body: RequestInit['body'], contentType: string | undefined) => (h: Record<string, string>) =>
    Promise.resolve(
      s.app.request('/subscribe', {
        method: 'POST',
        headers: contentType ? { 'content-type': contentType, ...h } : h,
        body,
      }),
    );
  const json = (body: unknown) => (h: Record<string, string>) => postJson(s, '/subscribe', body, h);
  const form = (fields: Record<string, string> | string) => (h: Record<string, string>) =>
    postForm(s, '/subscribe', fields, h);
  const multipart = (fill: (body: FormData) => void) => (h: Record<string, string>) => {
    const body = new FormData();
    fill(body);
    return Promise.resolve(s.app.request('/subscribe', { method: 'POST', headers: h, body }));
  };
  const manyFields = Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`f${i}`, 'x']));

  const cases: BadRequest[] = [
    {
      what: 'a text/plain body',
      send: raw('email=a@example.org', 'text/plain'),
      status: 415,
      code: 'unsupported_media_type',
    },
    {
      what: 'no content type',
      send: raw('email=a@example.org', undefined),
      status: 415,
      code: 'unsupported_media_type',
    },
    {
      what: 'an XML body',
      send: raw('<email>a@example.org</email>', 'application/xml'),
      status: 415,
      code: 'unsupported_media_type',
    },
    {
      what: 'malformed JSON',
      send: json('{"email": "a@example.org"'),
      status: 400,
      code: 'malformed_json',
      alwaysJson: true,
    },
    { what: 'an empty JSON body', send: json(''), status: 400, code: 'malformed_json', alwaysJson: true },
    {
      what: 'a JSON array',
      send: json([{ email: 'a@example.org' }]),
      status: 400,
      code: 'malformed_json',
      alwaysJson: true,
    },
    {
      what: 'a JSON string',
      send: json('"a@example.org"'),
      status: 400,
      code: 'malformed_json',
      alwaysJson: true,
    },
    { what: 'JSON null', send: json('null'), status: 400, code: 'malformed_json', alwaysJson: true },
    { what: 'a JSON number', send: json('42'), status: 400, code: 'malformed_json', alwaysJson: true },
    {
      what: 'a missing email (JSON)',
      send: json({ name: 'Ann' }),
      status: 422,
      code: 'invalid_email',
      alwaysJson: true,
    },
    { what: 'a missing email (form)', send: form({ name: 'Ann' }), status: 422, code: 'invalid_email' },
    { what: 'an empty email', send: form({ email: '' }), status: 422, code: 'invalid_email' },
    {
      what: 'a blank email',
      send: json({ email: '   ' }),
      status: 422,
      code: 'invalid_email',
      alwaysJson: true,
    },
    {
      what: 'a 255-character email',
      send: form({ email: `${'a'.repeat(60)}@${'b'.repeat(190)}.org` }),
      status: 422,
      code: 'invalid_email',
    },
    {
      what: 'a very long email',
      send: json({ email: `${'a'.repeat(5000)}@example.org` }),
      status: 422,
      code: 'invalid_email',
      alwaysJson: true,
    },
    {
      what: 'an address without @',
      send: form({ email: 'not-an-email' }),
      status: 422,
      code: 'invalid_email',
    },
    {
      what: 'an address without a domain',
      send: form({ email: 'ann@' }),
      status: 422,
      code: 'invalid_email',
    },
    {
      what: 'an address with two @',
      send: form({ email: 'ann@b@example.org' }),
      status: 422,
      code: 'invalid_email',
    },
    {
      what: 'an address with a space',
      send: form({ email: 'ann reader@example.org' }),
      status: 422,
      code: 'invalid_email',
    },
    {
      what: 'an address with markup',
      send: form({ email: '<script>alert(1)</script>@example.org' }),
      status: 422,
      code: 'invalid_email',
    },
    {
      what: 'an address with a newline (header injection)',
      send: json({ email: 'ann@example.org\nBcc: victim@example.org' }),
      status: 422,
      code: 'invalid_email',
      alwaysJson: true,
    },
    {
      what: 'an email that is a number',
      send: json({ email: 42 }),
      status: 422,
      code: 'invalid_email',
      alwaysJson: true,
    },
    {
      what: 'an email that is an object',
      send: json({ email: { $ne: '' } }),
      status: 422,
      code: 'invalid_input',
      alwaysJson: true,
    },
    {
      what: 'an email that is a list',
      send: json({ email: ['a@example.org', 'b@example.org'] }),
      status: 422,
      code: 'invalid_input',
      alwaysJson: true,
    },
    {
      what: 'a name over 100 characters',
      send: form({ email: 'long-name@example.org', name: 'n'.repeat(101) }),
      status: 422,
      code: 'invalid_input',
    },
    {
      what: 'a name over 100 characters (JSON)',
      send: json({ email: 'long-name@example.org', name: 'n'.repeat(101) }),
      status: 422,
      code: 'invalid_input',
      alwaysJson: true,
    },
    {
      what: 'a body over BODY_LIMIT_BYTES (form)',
      send: form({ email: 'huge@example.org', name: 'x'.repeat(17 * 1024) }),
      status: 413,
      code: 'payload_too_large',
    },
    {
      what: 'a body over BODY_LIMIT_BYTES (JSON)',
      send: json({ email: 'huge@example.org', pad: 'x'.repeat(17 * 1024) }),
      status: 413,
      code: 'payload_too_large',
      alwaysJson: true,
    },
    {
      what: 'a streamed body over BODY_LIMIT_BYTES',
      send: (h) => streamed(s, 'x'.repeat(64 * 1024), h),
      status: 413,
      code: 'payload_too_large',
    },
    {
      what: 'too many form fields',
      send: form({ email: 'many@example.org', ...manyFields }),
      status: 400,
      code: 'bad_request',
    },
    {
      what: 'too many JSON fields',
      send: json({ email: 'many@example.org', ...manyFields }),
      status: 400,
      code: 'bad_request',
      alwaysJson: true,
    },
    {
      what: 'a file upload',
      send: multipart((b) => {
        b.set('email', 'file@example.org');
        b.set('attachment', new Blob(['hello']), 'a.txt');
      }),
      status: 422,
      code: 'invalid_input',
    },
    {
      what: 'the email sent as a file',
      send: multipart((b) => b.set('email', new Blob(['file@example.org']), 'email.txt')),
      status: 422,
      code: 'invalid_input',
    },
    {
      what: 'a multipart body without a boundary',
      send: raw('email=x', 'multipart/form-data'),
      status: 400,
      code: 'bad_request',
    },
  ];

  for (const c of cases) {
    it(`${c.what}: ${c.status} ${c.code} in JSON for a JSON client, and no row is written`, async () => {
      const before = await tableCounts(s.database.db);
      const res = await c.send(JSON_CLIENT);
      expect(res.status).toBe(c.status);
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      const error = await errorIn(res);
      expect(error.code).toBe(c.code);
      expect(error.message.length).toBeGreaterThan(10);
      expect(error.message).not.toMatch(/\n\s+at |node_modules|\.ts:\d+/);
      expect(await tableCounts(s.database.db)).toEqual(before);
    });

    it(`${c.what}: ${c.status} with ${c.alwaysJson ? 'JSON' : 'an HTML page'} for a browser, and no row is written`, async () => {
      const before = await tableCounts(s.database.db);
      const res = await c.send(BROWSER);
      expect(res.status).toBe(c.status);
      expect(res.headers.get('location')).toBeNull();
      const body = await res.text();
      expect(body).not.toMatch(/\n\s+at |node_modules|\.ts:\d+/);
      if (c.alwaysJson) {
        expect(JSON.parse(body).error.code).toBe(c.code);
      } else {
        expect(res.headers.get('content-type')).toMatch(/^text\/html/);
        expect(body).toMatch(/^<!doctype html>/i);
        expect(body).not.toContain('<script>');
      }
      expect(await tableCounts(s.database.db)).toEqual(before);
    });
  }

  it('nothing the service refused was mailed', async () => {
    await s.drain();
    expect(s.smtp.received).toHaveLength(0);
  });

  it('a field name is shown escaped on the error page', async () => {
    const body = new FormData();
    body.set('email', 'x@example.org');
    body.set('<img src=x onerror=alert(1)>', new Blob(['x']), 'x.txt');
    const res = await s.app.request('/subscribe', { method: 'POST', headers: BROWSER, body });
    expect(res.status).toBe(422);
    expect(await res.text()).not.toContain('<img');
  });

  it('the honeypot field filled in gets the normal answer, and nothing is stored or sent', async () => {
    const before = await tableCounts(s.database.db);
    const res = await postForm(s, '/subscribe', {
      email: 'bot@example.org',
      website: 'https://spam.example',
    });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe(`${PUBLIC_URL}/check-inbox`);
    const json = await postJson(s, '/subscribe', { email: 'bot@example.org', website: 'x' });
    expect(json.status).toBe(202);
    expect(await json.json()).toEqual({ status: 'pending' });
    await s.drain();
    expect(await tableCounts(s.database.db)).toEqual(before);
    expect(await subscribersFor(s.database.db, 'bot@example.org')).toHaveLength(0);
    expect(s.smtp.to('bot@example.org')).toHaveLength(0);
  });

  it('an email of 254 characters is still accepted', async () => {
    const email = `${'a'.repeat(60)}@${'b'.repeat(189)}.org`;
    expect(email).toHaveLength(254);
    const res = await postJson(s, '/subscribe', { email });
    expect(res.status).toBe(202);
  });

  it('a name of 100 characters is still accepted', async () => {
    const res = await postJson(s, '/subscribe', { email: 'hundred@example.org', name: 'n'.repeat(100) });
    expect(res.status).toBe(202);
  });

  it('an unknown path is a 404 page for a browser and a 404 JSON error for a JSON client', async () => {
    const page = await s.app.request('/nothing-here', { headers: BROWSER });
    expect(page.status).toBe(404);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(await page.text()).toContain('Page not found');

    const json = await s.app.request('/nothing-here', { headers: JSON_CLIENT });
    expect(json.status).toBe(404);
    expect((await errorIn(json)).code).toBe('not_found');
  });

  it('a GET of /subscribe is not a 500', async () => {
    const res = await s.app.request('/subscribe', { headers: JSON_CLIENT });
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
  });
});

/** A body sent in chunks with no Content-Length, as a client streaming a large upload would. */
function streamed(s: TestService, text: string, headers: Record<string, string>): Promise<Response> {
  const bytes = new TextEncoder().encode(`email=stream%40example.org&name=${text}`);
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      for (let i = 0; i < bytes.length; i += 4096) controller.enqueue(bytes.slice(i, i + 4096));
      controller.close();
    },
  });
  return Promise.resolve(
    s.app.request('/subscribe', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body,
      duplex: 'half',
    } as RequestInit),
  );
}
