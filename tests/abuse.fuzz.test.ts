import { sql } from 'drizzle-orm';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rows } from '../src/db/client.js';
import { testDbKind } from './support/db.js';
import { postJson, subscribersFor } from './support/reader.js';
import type { TestService } from './support/service.js';
import { confirmTokenIn, createTestService, PUBLIC_URL, PUBLISHER_TOKEN } from './support/service.js';

/**
 * Thousands of generated hostile requests at every endpoint. Whatever arrives, the service answers
 * with a 4xx or a success, never a 5xx; no answer shows a stack trace, a file path or SQL; and a refused
 * request leaves every row as it was.
 */

const SITE = 'https://site.example';
/** Requests per endpoint group, on each database: about 12 s on PostgreSQL, 25 s on PGlite. */
const RUNS = { subscribe: 1200, links: 600, publisher: 800, other: 400 };

/** Placeholders the link generators use for the real tokens made in beforeAll. */
const REAL_CONFIRM = '<real-confirm-token>';
const REAL_UNSUBSCRIBE = '<real-unsubscribe-token>';

interface FuzzRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: RequestInit['body'];
}

// ---- generators -------------------------------------------------------------------------------------

/** Strings that have broken services before: injections, encodings, edge lengths, prototype keys. */
const NASTY = [
  '',
  ' ',
  '\u0000',
  'a\u0000b',
  '\r\n',
  'Ann\r\nBcc: victim@example.net',
  'Ann\nX-Injected: yes',
  "a'); drop table subscribers;--@x.org",
  "Robert'); DROP TABLE subscribers;--",
  "' or '1'='1",
  '" or ""="',
  '1; select pg_sleep(5)--',
  '$1',
  '\\',
  '"><script>alert(1)</script>',
  '<img src=x onerror=alert(1)>',
  '{{ 7 | times: 7 }}',
  '{% include "pages/layout.liquid" %}',
  '%00',
  '%zz',
  '%E0%A4%A',
  '../../etc/passwd',
  '\ud800',
  '\udfff\ud800',
  '\uffff',
  '\u202e\u2066',
  '\u2028',
  'ｅｍａｉｌ＠ｅｘａｍｐｌｅ．ｏｒｇ',
  '😀'.repeat(60),
  'a'.repeat(101),
  'a'.repeat(255),
  'x'.repeat(20_000),
  '__proto__',
  'constructor',
  'toString',
  'hasOwnProperty',
  'null',
  'undefined',
  'true',
  '-1',
  '1e309',
  'NaN',
  '[]',
  '{}',
  'ann@example.org',
  'ann@example.org\r\nBcc: victim@example.net',
  'ann@example.org,victim@example.net',
  'ann@example.org;victim@example.net',
  'Ann <ann@example.org>',
  'ann@@example.org',
  '@example.org',
  'ann@',
  'ann@localhost',
  'ann@[127.0.0.1]',
  '"a b"@example.org',
  'ünïcode@exämple.org',
  `${'l'.repeat(65)}@example.org`,
  `${'a'.repeat(60)}@${'b'.repeat(190)}.org`,
];

const nasty = fc.constantFrom(...NASTY);

const text = fc.oneof(
  { weight: 4, arbitrary: nasty },
  { weight: 2, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 120 }) },
);

/** Percent-encodes any string, even one with a lone surrogate (which encodeURIComponent refuses). */
const percentEncoded = (t: string) => {
  try {
    return encodeURIComponent(t);
  } catch {
    return [...Buffer.from(t)].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');
  }
};

/** Any JSON value where a string was expected. */
const notAString = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(text, { maxLength: 3 }),
  fc.dictionary(text, text, { maxKeys: 3 }),
  fc.jsonValue({ maxDepth: 2 }),
);

const fieldValue = fc.oneof({ weight: 5, arbitrary: text }, { weight: 1, arbitrary: notAString });

/** Addresses: a few that repeat (so they are known, pending, and limited), many valid ones, and junk. */
const address = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      'ann@example.org',
      'ANN@Example.ORG',
      ' bob@example.org ',
      'reader@example.org',
      'pending@example.org',
    ),
  },
  {
    weight: 4,
    arbitrary: fc
      .tuple(fc.stringMatching(/^[a-z0-9]{1,10}([._+-][a-z0-9]{1,6})?$/), fc.domain())
      .map(([local, domain]) => `${local}@${domain}`),
  },
  { weight: 2, arbitrary: fc.emailAddress() },
  { weight: 3, arbitrary: text },
  { weight: 1, arbitrary: fc.tuple(fc.emailAddress(), text).map(([e, t]) => e + t) },
  { weight: 1, arbitrary: fc.tuple(text, fc.domain()).map(([l, d]) => `${l}@${d}`) },
);

const redirect = fc.oneof(
  fc.constantFrom(
    `${SITE}/thanks`,
    `${PUBLIC_URL}/check-inbox`,
    'https://evil.example/phish',
    `${SITE}.evil.example/`,
    'https://site.example@evil.example/',
    '//evil.example',
    '/relative',
    'javascript:alert(1)',
    'data:text/html,<script>alert(1)</script>',
  ),
  fc.webUrl(),
  text,
);

/** Occasionally many extra fields (more than the 20 allowed), usually none. */
const extraFields = fc.oneof(
  { weight: 6, arbitrary: fc.constant({}) },
  { weight: 1, arbitrary: fc.dictionary(text, fieldValue, { maxKeys: 30 }) },
);

/** Fields a real form would send: a good address, maybe a plain name and an allowed redirect. */
const plausibleFields = fc.record(
  {
    email: fc.oneof(
      fc.constantFrom('ann@example.org', 'ANN@Example.ORG', 'reader@example.org', 'pending@example.org'),
      fc
        .tuple(fc.stringMatching(/^[a-z0-9]{1,10}([._+-][a-z0-9]{1,6})?$/), fc.domain())
        .map(([local, domain]) => `${local}@${domain}`),
    ),
    name: fc.oneof(fc.constant('Ann Reader'), fc.string({ unit: 'grapheme', maxLength: 30 }), nasty),
    redirect: fc.constant(`${SITE}/thanks`),
  },
  { requiredKeys: ['email'] },
);

const hostileFields = fc
  .tuple(
    fc.record(
      {
        email: fc.oneof({ weight: 6, arbitrary: address }, { weight: 1, arbitrary: notAString }),
        name: fieldValue,
        redirect,
        website: fc.oneof({ weight: 6, arbitrary: fc.constant('') }, { weight: 1, arbitrary: text }),
      },
      { requiredKeys: [] },
    ),
    extraFields,
  )
  .map(([fields, extra]) => ({ ...extra, ...fields }) as Record<string, unknown>);

const subscribeFields = fc.oneof(
  { weight: 1, arbitrary: plausibleFields as fc.Arbitrary<Record<string, unknown>> },
  { weight: 2, arbitrary: hostileFields },
);

/** Bytes of a text in one of the encodings a client might use, declared or not. */
const encoded = (body: string, encoding: BufferEncoding | 'as-is'): RequestInit['body'] =>
  encoding === 'as-is' ? body : new Uint8Array(Buffer.from(body, encoding));
const encoding = fc.constantFrom<BufferEncoding | 'as-is'>('as-is', 'as-is', 'utf16le', 'latin1', 'base64');

const asFormValue = (v: unknown) => (typeof v === 'string' ? v : (JSON.stringify(v) ?? ''));

const JSON_TYPES = [
  'application/json',
  'application/json; charset=utf-8',
  'application/json; charset=utf-16',
  'application/json;charset=iso-8859-1',
  'APPLICATION/JSON',
  'application/ld+json',
  'application/vnd.api+json',
];
const FORM_TYPES = [
  'application/x-www-form-urlencoded',
  'application/x-www-form-urlencoded; charset=utf-8',
  'application/x-www-form-urlencoded; charset=iso-8859-1',
  'application/x-www-form-urlencoded; charset="utf-16"; x=y',
];
const OTHER_TYPES = [
  '',
  'text/plain',
  'text/html',
  'application/xml',
  'application/octet-stream',
  'multipart/form-data',
  'multipart/form-data; boundary=',
  'multipart/form-data; boundary=xyz',
  'multipart/mixed; boundary=xyz',
  '*/*',
  'application/',
  ';;;',
  'application/json, application/x-www-form-urlencoded',
];

/** A header value as HTTP allows it (no CR, LF or NUL; bytes up to 0xFF). */
const headerValue = fc.string({
  unit: fc
    .integer({ min: 0x20, max: 0xff })
    .filter((c) => c !== 0x7f)
    .map((c) => String.fromCharCode(c)),
  maxLength: 80,
});
const headerName = fc.stringMatching(/^[a-z][a-z0-9-]{0,20}$/);

/** A content type that usually matches the body, and sometimes does not. */
const contentType = (usual: string[]) =>
  fc.oneof(
    { weight: 5, arbitrary: fc.constantFrom(...usual) },
    { weight: 1, arbitrary: fc.constantFrom(...JSON_TYPES, ...FORM_TYPES, ...OTHER_TYPES) },
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...usual), headerValue).map(([t, p]) => `${t}; ${p}`) },
  );

interface Body {
  contentType?: string;
  body?: RequestInit['body'];
}

/** A request body of any kind: JSON (whole, broken, any value), a form, multipart, raw bytes, or none. */
const bodyOf = (fields: fc.Arbitrary<Record<string, unknown>>): fc.Arbitrary<Body> =>
  fc.oneof(
    {
      weight: 4,
      arbitrary: fc
        .tuple(fields, encoding, contentType(JSON_TYPES))
        .map(([f, enc, type]) => ({ contentType: type, body: encoded(JSON.stringify(f), enc) })),
    },
    {
      weight: 1,
      arbitrary: fc.tuple(fields, fc.nat(), text, contentType(JSON_TYPES)).map(([f, cut, tail, type]) => {
        const json = JSON.stringify(f);
        return { contentType: type, body: json.slice(0, cut % (json.length + 1)) + tail };
      }),
    },
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.json({ maxDepth: 2 }), contentType(JSON_TYPES))
        .map(([json, type]) => ({ contentType: type, body: json })),
    },
    {
      weight: 4,
      arbitrary: fc.tuple(fields, encoding, contentType(FORM_TYPES)).map(([f, enc, type]) => ({
        contentType: type,
        body: encoded(
          new URLSearchParams(
            Object.entries(f).map(([k, v]): [string, string] => [k, asFormValue(v)]),
          ).toString(),
          enc,
        ),
      })),
    },
    {
      weight: 1,
      arbitrary: fc
        .tuple(
          fc.string({ unit: fc.constantFrom(...'email=name&%zZ0E+;@.\u0000ü'), maxLength: 60 }),
          contentType(FORM_TYPES),
        )
        .map(([raw, type]) => ({ contentType: type, body: raw })),
    },
    {
      weight: 2,
      arbitrary: fc
        .tuple(fields, fc.boolean(), fc.option(fc.constantFrom(...OTHER_TYPES)))
        .map(([f, withFile, type]) => {
          const form = new FormData();
          for (const [k, v] of Object.entries(f)) form.append(k, asFormValue(v));
          if (withFile) form.append(Object.keys(f)[0] ?? 'email', new Blob(['x@example.org']), 'a.txt');
          return { contentType: type ?? undefined, body: form };
        }),
    },
    {
      weight: 1,
      arbitrary: fc
        .tuple(text, text, fc.constantFrom('xyz', '', '"xyz"', 'x'.repeat(100)))
        .map(([name, value, boundary]) => ({
          contentType: `multipart/form-data; boundary=${boundary}`,
          body: `--xyz\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n--xy`,
        })),
    },
    {
      weight: 1,
      arbitrary: fc
        .tuple(
          fc.uint8Array({ maxLength: 300 }),
          fc.constantFrom(...JSON_TYPES, ...FORM_TYPES, ...OTHER_TYPES),
        )
        .map(([bytes, type]) => ({ contentType: type, body: bytes })),
    },
    { weight: 1, arbitrary: fc.constant({}) },
  );

const ACCEPTS = [
  'application/json',
  'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8',
  '*/*',
  'application/json, text/html',
  'text/plain',
  'image/*',
  '',
];

const authorization = fc.oneof(
  { weight: 10, arbitrary: fc.constant(`Bearer ${PUBLISHER_TOKEN}`) },
  {
    weight: 4,
    arbitrary: fc.constantFrom(
      `bearer ${PUBLISHER_TOKEN}`,
      `Bearer ${PUBLISHER_TOKEN}x`,
      `Bearer ${PUBLISHER_TOKEN.slice(0, -1)}`,
      `Bearer ${PUBLISHER_TOKEN.toUpperCase()}`,
      `Bearer  ${PUBLISHER_TOKEN} ${PUBLISHER_TOKEN}`,
      `Basic ${btoa(`publisher:${PUBLISHER_TOKEN}`)}`,
      PUBLISHER_TOKEN,
      'Bearer',
      'Bearer ',
      `Bearer ${'x'.repeat(4000)}`,
    ),
  },
  { weight: 2, arbitrary: headerValue.map((v) => `Bearer ${v}`) },
  { weight: 2, arbitrary: headerValue },
);

/** Headers a client, a proxy or an attacker might send: the usual ones often, odd ones now and then. */
const headers = fc
  .tuple(
    fc.record(
      {
        accept: fc.oneof(fc.constantFrom(...ACCEPTS), headerValue),
        origin: fc.oneof(fc.constantFrom(SITE, PUBLIC_URL, 'https://evil.example', 'null'), headerValue),
        'x-forwarded-for': fc.oneof(
          fc.ipV4(),
          fc.ipV6(),
          fc.array(fc.ipV4(), { maxLength: 5 }).map((ips) => ips.join(', ')),
          headerValue,
        ),
        authorization,
      },
      { requiredKeys: [] },
    ),
    fc.oneof(
      { weight: 3, arbitrary: fc.constant({}) },
      {
        weight: 1,
        arbitrary: fc.record(
          {
            'content-length': fc.constantFrom('0', '-1', '1', 'abc', '99999999999', '1e3', '16385'),
            'content-encoding': fc.constantFrom('gzip', 'br', 'deflate', 'identity', 'x-garbage'),
            'accept-charset': headerValue,
            'accept-language': headerValue,
            cookie: headerValue,
            referer: headerValue,
            'x-http-method-override': fc.constantFrom('DELETE', 'PUT', 'GET'),
          },
          { requiredKeys: [] },
        ),
      },
    ),
    fc.oneof(
      { weight: 3, arbitrary: fc.constant({}) },
      { weight: 1, arbitrary: fc.dictionary(headerName, headerValue, { maxKeys: 3 }) },
    ),
  )
  .map(([usual, odd, extra]) => ({ ...extra, ...odd, ...usual }));

const query = fc.oneof(
  { weight: 4, arbitrary: fc.constant('') },
  { weight: 1, arbitrary: text.map((q) => `?${percentEncoded(q)}`) },
  {
    weight: 1,
    arbitrary: fc
      .dictionary(text, text, { maxKeys: 4 })
      .map((d) => `?${new URLSearchParams(Object.entries(d))}`),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      '?email=x@example.org',
      '?redirect=https://evil.example',
      '?%zz=%',
      '?__proto__[polluted]=1',
      '?a=1&a=2&a[]=3',
      `?token=${PUBLISHER_TOKEN}`,
      `?${'q'.repeat(5000)}`,
    ),
  },
);

const anyMethod = fc.constantFrom(
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'PATCH',
  'DELETE',
  'OPTIONS',
  'PROPFIND',
  'post',
);

/** Mostly the endpoint's own method, sometimes any other. */
const methodFor = (usual: string[]) =>
  fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...usual) }, { weight: 1, arbitrary: anyMethod });

/** A path segment of every kind: valid-looking, encoded junk, traversal, or raw reserved characters. */
const segment = fc.oneof(
  text.map(percentEncoded),
  fc.constantFrom(
    '',
    '.',
    '..',
    '%2e%2e',
    '%2F',
    '%00',
    '%zz',
    '%E0%A4%A',
    ';x',
    'a%2Fb',
    '..%2F..%2Fetc%2Fpasswd',
  ),
  fc.string({ unit: fc.constantFrom(..."aZ09_-.~%;:@!$&'()*+,="), maxLength: 50 }),
);

/** Link tokens: right shape but unknown, real ones, real ones with a character changed, and junk. */
const token = fc.oneof(
  { weight: 2, arbitrary: fc.stringMatching(/^[A-Za-z0-9_-]{43}$/) },
  { weight: 2, arbitrary: fc.constantFrom(REAL_CONFIRM, REAL_UNSUBSCRIBE) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.constantFrom(REAL_CONFIRM, REAL_UNSUBSCRIBE), fc.nat(43), segment)
      .map(([t, at, s]) => `${t}@${at}@${s}`),
  },
  { weight: 3, arbitrary: segment },
  { weight: 1, arbitrary: fc.stringMatching(/^[A-Za-z0-9_-]{40,46}$/) },
);

const withBody = (method: string, body: Body, h: Record<string, string>): FuzzRequest['body'] => {
  if (method === 'GET' || method === 'HEAD' || body.body === undefined) return undefined;
  if (body.contentType !== undefined) h['content-type'] = body.contentType;
  return body.body;
};

const request = (
  method: fc.Arbitrary<string>,
  path: fc.Arbitrary<string>,
  body: fc.Arbitrary<Body>,
): fc.Arbitrary<FuzzRequest> =>
  fc.tuple(method, path, query, headers, body).map(([m, p, q, h, b]) => {
    const all = { ...h };
    return { method: m, path: p + q, body: withBody(m, b, all), headers: all };
  });

const linkBody = fc.oneof(
  fc.constant<Body>({ contentType: 'application/x-www-form-urlencoded', body: 'List-Unsubscribe=One-Click' }),
  bodyOf(fc.dictionary(text, fieldValue, { maxKeys: 3 })),
);

const hostileEssay = fc
  .tuple(
    fc.record(
      {
        slug: fc.oneof(
          fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,12}$/),
          fc.constantFrom('On-Walking', 'essay'),
          fieldValue,
        ),
        title: fc.oneof(fc.constant('An essay'), fieldValue),
        url: fc.oneof(
          fc.webUrl(),
          fc.constantFrom('https://example.org/e', 'javascript:alert(1)'),
          fieldValue,
        ),
        summary: fc.oneof(fc.constant(null), fieldValue),
      },
      { requiredKeys: [] },
    ),
    extraFields,
  )
  .map(([fields, extra]) => ({ ...extra, ...fields }) as Record<string, unknown>);

const essayFields = fc.oneof(
  {
    weight: 1,
    arbitrary: fc.record({
      slug: fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,12}$/),
      title: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 }),
      url: fc.constantFrom('https://example.org/e', 'http://example.org/a?b=c'),
    }) as fc.Arbitrary<Record<string, unknown>>,
  },
  { weight: 2, arbitrary: hostileEssay },
);

// ---- what must hold for every request ---------------------------------------------------------------

/** What an internal error would look like in a body: stack frames, file paths, SQL, driver messages. */
const LEAKS = [
  /\n\s+at \S/,
  /\\n\s+at \S/,
  /\bat (async )?[\w$.<>[\]]+ \((file:|node:|\/)/,
  /node_modules\/|\/src\/[\w/-]+\.(ts|js)\b/,
  /\.(ts|js|mjs|cjs):\d+/,
  /Failed query|params:|SQLSTATE|syntax error|invalid byte sequence|violates|duplicate key|relation "|PGlite|postgres\.js|drizzle/i,
  /\b(insert into|delete from|select [\w*,\s"().]+ from|on conflict|returning \w)/i,
  new RegExp(process.cwd().replace(/[.*+?^${}()|[\]\\]/g, '\\$&')),
  /\b(TypeError|ReferenceError|RangeError|SyntaxError|AppError|ZodError)\b/,
];

interface Snapshot {
  counts: Record<string, number>;
  hashes: Record<string, string>;
}

/** Every row of the four tables a request could write, as counts and a digest. */
async function snapshot(s: TestService): Promise<Snapshot> {
  const [row] = await rows<Record<string, string | number>>(
    s.database.db,
    sql`select
      (select count(*) from subscribers)::int as subscribers,
      (select count(*) from confirmations)::int as confirmations,
      (select count(*) from essays)::int as essays,
      (select count(*) from deliveries)::int as deliveries,
      (select md5(coalesce(string_agg(t::text, ',' order by t.id), '')) from subscribers t) as subscribers_rows,
      (select md5(coalesce(string_agg(t::text, ',' order by t.id), '')) from confirmations t) as confirmations_rows,
      (select md5(coalesce(string_agg(t::text, ',' order by t.id), '')) from essays t) as essays_rows,
      (select md5(coalesce(string_agg(t::text, ',' order by t.essay_id, t.subscriber_id), ''))
         from deliveries t) as deliveries_rows`,
  );
  const counts: Record<string, number> = {};
  const hashes: Record<string, string> = {};
  for (const [key, value] of Object.entries(row ?? {})) {
    if (key.endsWith('_rows')) hashes[key] = String(value);
    else counts[key] = Number(value);
  }
  return { counts, hashes };
}

const describeRequest = (r: FuzzRequest) =>
  `${r.method} ${r.path.slice(0, 200)} ${JSON.stringify(r.headers).slice(0, 300)} body=${
    typeof r.body === 'string' ? JSON.stringify(r.body.slice(0, 200)) : (r.body?.constructor.name ?? 'none')
  }`;

describe('hostile requests at every endpoint', () => {
  let s: TestService;
  const tokens: Record<string, string> = {};
  const sent: Record<string, number> = {};
  const statuses: Record<string, Record<number, number>> = {};
  let unauthorizedBody = '';
  let last: Snapshot | undefined;

  beforeAll(async () => {
    s = await createTestService({
      TRUST_PROXY: 'true',
      ALLOWED_ORIGINS: SITE,
      SUBSCRIBE_LIMIT_PER_IP: '1000000',
      SUBSCRIBE_LIMIT_PER_ADDRESS: '3',
    });
    // A confirmed reader (with an unsubscribe link) and a pending one (with a live confirmation link).
    for (const email of ['reader@example.org', 'pending@example.org']) {
      expect((await s.subscribeJson(email)).status).toBe(202);
    }
    await s.drain();
    const confirmed = confirmTokenIn(s.smtp.to('reader@example.org')[0]?.parsed.text);
    expect((await s.app.request(`/confirm/${confirmed}`, { method: 'POST' })).status).toBe(200);
    tokens[REAL_CONFIRM] = confirmTokenIn(s.smtp.to('pending@example.org')[0]?.parsed.text);
    tokens[REAL_UNSUBSCRIBE] = (await subscribersFor(s.database.db, 'reader@example.org'))[0]
      ?.unsubscribe_token as string;
    unauthorizedBody = await (await s.app.request('/api/essays')).text();
  });

  afterAll(async () => {
    const total = Object.values(sent).reduce((a, b) => a + b, 0);
    console.log(
      `fuzz (${testDbKind}): ${total} requests ${JSON.stringify(sent)}, statuses ${JSON.stringify(statuses)}`,
    );
    await s?.close();
  });

  /** Replaces the token placeholders; `<token>@<i>@<s>` is the token with character i changed to s. */
  function withRealTokens(path: string): string {
    return path.replace(
      /(<real-[a-z-]+>)(?:@(\d+)@([^/?]*))?/g,
      (_, name: string, at?: string, s?: string) => {
        const real = tokens[name] ?? '';
        if (at === undefined) return real;
        const i = Number(at);
        return real.slice(0, i) + (s || '_') + real.slice(i + 1);
      },
    );
  }

  /**
   * Sends one request and checks what must always hold. `mayWrite` says whether a success of this request
   * is allowed to change rows; a refusal never is.
   */
  async function send(group: string, r: FuzzRequest, mayWrite: (status: number) => boolean) {
    const path = withRealTokens(r.path);
    // Nothing else writes between two requests (no dispatcher runs), so the last answer's rows are the "before".
    const before = last ?? (await snapshot(s));
    const res = await s.app.request(path, { method: r.method, headers: r.headers, body: r.body });
    const body = await res.text();
    const after = await snapshot(s);
    last = after;
    sent[group] = (sent[group] ?? 0) + 1;
    const seen = statuses[group] ?? {};
    statuses[group] = seen;
    seen[res.status] = (seen[res.status] ?? 0) + 1;
    const what = `${describeRequest({ ...r, path })} → ${res.status} ${body.slice(0, 300)}`;

    expect(res.status, what).toBeLessThan(500);
    for (const leak of LEAKS) expect(body, what).not.toMatch(leak);
    expect(body, what).not.toContain(PUBLISHER_TOKEN);
    if (res.status >= 400 && r.method !== 'HEAD') {
      expect(res.headers.get('content-type'), what).toMatch(/^(application\/json|text\/html)/);
    }
    if (res.status >= 400 || !mayWrite(res.status)) expect(after, what).toEqual(before);
    return { res, body, before, after };
  }

  it('POST /subscribe: no 5xx, no internals, and rows only for a subscription it took', async () => {
    const arb = request(
      methodFor(['POST']),
      fc.oneof(
        { weight: 9, arbitrary: fc.constant('/subscribe') },
        { weight: 1, arbitrary: fc.constantFrom('/subscribe/', '/Subscribe', '//subscribe', '/subscribe;x') },
      ),
      bodyOf(subscribeFields),
    );
    let taken = 0;
    await fc.assert(
      fc.asyncProperty(arb, async (r) => {
        const { res, before, after } = await send('subscribe', r, (status) => status < 400);
        if (res.status >= 400) return;
        // A subscription taken is at most one subscriber and one confirmation request; nothing else.
        expect((after.counts.subscribers ?? 0) - (before.counts.subscribers ?? 0)).toBeLessThanOrEqual(1);
        expect((after.counts.confirmations ?? 0) - (before.counts.confirmations ?? 0)).toBeLessThanOrEqual(1);
        expect(after.hashes.essays_rows).toBe(before.hashes.essays_rows);
        expect(after.hashes.deliveries_rows).toBe(before.hashes.deliveries_rows);
        if ((after.counts.confirmations ?? 0) > (before.counts.confirmations ?? 0)) taken++;
      }),
      { numRuns: RUNS.subscribe },
    );
    // The generators reach both sides: subscriptions taken, and many kinds of refusal.
    expect(taken).toBeGreaterThan(RUNS.subscribe / 50);
    expect(
      Object.keys(statuses.subscribe ?? {}).filter((k) => Number(k) >= 400).length,
    ).toBeGreaterThanOrEqual(6);
  });

  it('the confirmation emails for all of that reach one recipient each, with no injected header', async () => {
    expect(s.smtp.received.length).toBe(2);
    await s.drain();
    last = undefined;
    const subscribers = await rows<{ email: string }>(
      s.database.db,
      sql`select lower(email) as email from subscribers`,
    );
    const known = new Set(subscribers.map((r) => r.email));
    expect(s.smtp.received.length).toBeGreaterThan(10);
    for (const mail of s.smtp.received) {
      const head = mail.raw.split(/\r?\n\r?\n/, 1)[0] ?? '';
      expect(head).not.toMatch(/^(bcc|cc|x-injected):/im);
      expect(known.has(mail.to)).toBe(true);
      expect(mail.parsed.to && !Array.isArray(mail.parsed.to) ? mail.parsed.to.value : []).toHaveLength(1);
    }
  });

  it('confirm and unsubscribe links: no 5xx, no internals, nothing written by a refusal', async () => {
    const arb = request(
      methodFor(['GET', 'POST']),
      fc
        .tuple(
          fc.constantFrom('/confirm/', '/unsubscribe/', '/Confirm/', '/UNSUBSCRIBE/', '/confirm//'),
          token,
          fc.constantFrom('', '', '', '/', '/extra', '//', '/..', '/%2e%2e'),
        )
        .map(([prefix, t, suffix]) => prefix + t + suffix),
      linkBody,
    );
    await fc.assert(
      fc.asyncProperty(arb, async (r) => {
        // A POST with a real token may confirm or unsubscribe: that is its job.
        const real = /<real-[a-z-]+>(?!@)/.test(r.path) && r.method.toUpperCase() === 'POST';
        await send('links', r, () => real);
      }),
      { numRuns: RUNS.links },
    );
  });

  it('the publisher API: no 5xx, no internals, 401 for anything but the token, rows only for a publish', async () => {
    const path = fc.oneof(
      { weight: 4, arbitrary: fc.constant('/api/essays') },
      {
        weight: 3,
        arbitrary: fc
          .oneof(
            fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,12}$/),
            fc.constantFrom('On-Walking', 'essay'),
            segment,
          )
          .map((slug) => `/api/essays/${slug}`),
      },
      { weight: 1, arbitrary: segment.map((p) => `/api/${p}`) },
      {
        weight: 1,
        arbitrary: fc.constantFrom('/api', '/api/', '/api/essays/', '/API/essays', '/api//essays'),
      },
    );
    // Every publisher request carries some Authorization (or none at all), the right token half the time.
    const arb = fc
      .tuple(
        fc.oneof(
          { weight: 4, arbitrary: request(methodFor(['POST', 'GET']), path, bodyOf(essayFields)) },
          {
            weight: 1,
            arbitrary: request(
              fc.constant('POST'),
              fc.constant('/api/essays'),
              essayFields.map((f) => ({ contentType: 'application/json', body: JSON.stringify(f) })),
            ),
          },
        ),
        fc.option(authorization, { freq: 6 }),
      )
      .map(([r, auth]) => {
        const { authorization: _, ...rest } = r.headers;
        return { ...r, headers: auth === null ? rest : { ...rest, authorization: auth } };
      });
    await fc.assert(
      fc.asyncProperty(arb, async (r) => {
        const authorized = new RegExp(`^Bearer\\s+${PUBLISHER_TOKEN}$`, 'i').test(
          r.headers.authorization ?? '',
        );
        const { res, body } = await send('publisher', r, (status) => authorized && status === 202);
        if (!authorized && new URL(r.path, 'http://x').pathname.startsWith('/api/')) {
          // Nothing is revealed without the token: the same 401 whatever was asked (or 413 for a huge body).
          expect([401, 413], `${r.method} ${r.path} → ${res.status}`).toContain(res.status);
          if (res.status === 401 && r.method !== 'HEAD') expect(body).toBe(unauthorizedBody);
        }
      }),
      { numRuns: RUNS.publisher },
    );
  });

  it('health, readiness, the stylesheet, the inbox page and unknown paths: no 5xx, no internals, no writes', async () => {
    const path = fc.oneof(
      fc.constantFrom(
        '/healthz',
        '/readyz',
        '/assets/style.css',
        '/check-inbox',
        '/form',
        '/form.js',
        '/',
        '/assets/',
        '/assets/..%2F..%2Fpackage.json',
        '/assets/%2e%2e/%2e%2e/package.json',
        '/.env',
        '/src/app.ts',
        '/package.json',
        '/index.php',
        '/wp-login.php',
        '/.git/config',
      ),
      fc.array(segment, { minLength: 1, maxLength: 4 }).map((parts) => `/${parts.join('/')}`),
    );
    const arb = request(
      methodFor(['GET', 'HEAD']),
      path,
      bodyOf(fc.dictionary(text, fieldValue, { maxKeys: 3 })),
    );
    await fc.assert(
      fc.asyncProperty(arb, async (r) => {
        const { res, body } = await send('other', r, () => false);
        if (res.status === 200 && r.method === 'GET' && r.path.startsWith('/assets/style.css')) {
          expect(res.headers.get('content-type')).toMatch(/^text\/css/);
        }
        expect(body).not.toContain('"name": "oneletter"');
      }),
      { numRuns: RUNS.other },
    );
  });

  it('sent a few thousand requests in all', () => {
    const total = Object.values(sent).reduce((a, b) => a + b, 0);
    expect(total).toBe(RUNS.subscribe + RUNS.links + RUNS.publisher + RUNS.other);
    expect(total).toBeGreaterThanOrEqual(2000);
  });

  it('a good subscription still works afterwards', async () => {
    const res = await postJson(s, '/subscribe', { email: 'after-the-storm@example.org' });
    expect(res.status).toBe(202);
  });
});
