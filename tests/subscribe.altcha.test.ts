import { createChallenge, solveChallenge } from 'altcha-lib';
import { deriveKey } from 'altcha-lib/algorithms/web/pbkdf2';
import type { Challenge } from 'altcha-lib/types';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../src/app.js';
import type { Database } from '../src/db/client.js';
import { rows } from '../src/db/client.js';
import { MIGRATIONS_FOLDER } from '../src/db/open.js';
import { openPostgres } from '../src/db/postgres.js';
import { silentLogger } from '../src/log.js';
import { createRenderer } from '../src/mail/render.js';
import { loadTemplates } from '../src/mail/templates-fs.js';
import { contractCheck } from './support/contract.js';
import { errorIn, postForm, postJson, tableCounts } from './support/reader.js';
import type { TestService } from './support/service.js';
import { createTestService } from './support/service.js';

/**
 * Issue 26: with ALTCHA_HMAC_KEY set, POST /subscribe needs a solved challenge of this service's, once.
 * The solutions here come from altcha-lib's own solver, as the widget's would.
 */
const KEY = 'altcha-test-key-0123456789abcdef0123456789';

/** The widget's `altcha` field for a challenge: base64 of JSON {challenge, solution}. */
async function solve(challenge: Challenge): Promise<string> {
  const solution = await solveChallenge({ challenge, deriveKey });
  if (!solution) throw new Error('no solution found');
  return btoa(JSON.stringify({ challenge, solution }));
}

async function fetchChallenge(app: { request: TestService['app']['request'] }): Promise<Challenge> {
  const res = await app.request('/altcha');
  expect(res.status).toBe(200);
  expect(res.headers.get('cache-control')).toBe('no-store');
  return (await res.json()) as Challenge;
}

describe('with ALTCHA_HMAC_KEY set', () => {
  let s: TestService;
  beforeAll(async () => {
    s = await createTestService({ ALTCHA_HMAC_KEY: KEY });
  });
  afterAll(() => s.close());

  /** Expects a 422 verification_failed that wrote nothing and mailed nobody. */
  async function refusedWithNothingDone(res: Response | Promise<Response>, message: RegExp) {
    const before = await tableCounts(s.database.db);
    const answer = await res;
    expect(answer.status).toBe(422);
    const error = await errorIn(answer);
    expect(error.code).toBe('verification_failed');
    expect(error.message).toMatch(message);
    await s.drain();
    expect(await tableCounts(s.database.db)).toEqual(before);
  }

  it('GET /altcha gives a fresh challenge in altcha-lib’s default format, signed, expiring', async () => {
    const a = await fetchChallenge(s.app);
    const b = await fetchChallenge(s.app);
    expect(a.parameters).toMatchObject({ algorithm: 'PBKDF2/SHA-256', cost: 1000, keyLength: 32 });
    expect(a.signature).toMatch(/^[0-9a-f]{64}$/);
    expect(a.parameters.nonce).not.toBe(b.parameters.nonce);
    const expiresIn = (a.parameters.expiresAt ?? 0) - Date.now() / 1000;
    expect(expiresIn).toBeGreaterThan(590);
    expect(expiresIn).toBeLessThanOrEqual(600);
  });

  it('asks for a counter from 50 to 200 by default (ALTCHA_MAX_COUNTER), from a quarter of the setting to it', async () => {
    const counters = async (app: { request: TestService['app']['request'] }) => {
      const found: number[] = [];
      for (let i = 0; i < 8; i++) {
        const { solution } = JSON.parse(atob(await solve(await fetchChallenge(app))));
        found.push(solution.counter);
      }
      return found;
    };
    for (const counter of await counters(s.app)) {
      expect(counter).toBeGreaterThanOrEqual(50);
      expect(counter).toBeLessThanOrEqual(200);
    }
    const easy = createApp({
      config: { ...s.config, altchaMaxCounter: 8 },
      database: s.database,
      renderer: createRenderer(loadTemplates()),
      log: silentLogger,
    });
    for (const counter of await counters(easy)) {
      expect(counter).toBeGreaterThanOrEqual(2);
      expect(counter).toBeLessThanOrEqual(8);
    }
  });

  it('accepts a solved challenge once, and refuses it the second time, from this app or another', async () => {
    const payload = await solve(await fetchChallenge(s.app));
    const first = await postJson(s, '/subscribe', { email: 'solved@example.org', altcha: payload });
    expect(first.status).toBe(202);
    await s.drain();
    expect(s.smtp.to('solved@example.org')).toHaveLength(1);

    await refusedWithNothingDone(
      postJson(s, '/subscribe', { email: 'again@example.org', altcha: payload }),
      /already used/,
    );

    // A second instance of the service on the same database (its own connections on PostgreSQL), as a
    // second process would be: the solution is spent for it too.
    let other: Database = s.database;
    if (s.database.url) {
      other = await openPostgres(s.database.url, { poolSize: 2, migrationsFolder: MIGRATIONS_FOLDER });
    }
    try {
      const second = createApp({
        config: s.config,
        database: other,
        renderer: createRenderer(loadTemplates()),
        log: silentLogger,
      });
      await refusedWithNothingDone(
        second.request('/subscribe', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ email: 'elsewhere@example.org', altcha: payload }),
        }),
        /already used/,
      );
      // Its own challenges work, and are spent for the first instance in turn.
      const fromSecond = await solve(await fetchChallenge(second));
      expect(
        (
          await second.request('/subscribe', {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ email: 'second@example.org', altcha: fromSecond }),
          })
        ).status,
      ).toBe(202);
      await refusedWithNothingDone(
        postJson(s, '/subscribe', { email: 'second-again@example.org', altcha: fromSecond }),
        /already used/,
      );
    } finally {
      if (other !== s.database) await other.close();
    }
    await s.drain();
    expect(s.smtp.received.map((m) => m.to)).toEqual(['solved@example.org', 'second@example.org']);
  });

  it('takes a solution once when it arrives many times at once, in one process and in another', async () => {
    let other: Database = s.database;
    if (s.database.url) {
      other = await openPostgres(s.database.url, { poolSize: 2, migrationsFolder: MIGRATIONS_FOLDER });
    }
    try {
      const second = createApp({
        config: s.config,
        database: other,
        renderer: createRenderer(loadTemplates()),
        log: silentLogger,
      });
      await s.drain();
      const sent = s.smtp.received.length;
      // Two rounds: the first solution sent 6 times to each app at once, then 3 other solutions together,
      // each 3 times to each, interleaved (several taken in one batch, each once).
      for (const count of [1, 3]) {
        const payloads = await Promise.all(
          Array.from({ length: count }, async () => solve(await fetchChallenge(s.app))),
        );
        const copies = count === 1 ? 6 : 3;
        const answers = await Promise.all(
          Array.from({ length: copies }).flatMap((_, i) =>
            payloads.flatMap((payload, p) =>
              [s.app, second].map((app, a) =>
                app.request('/subscribe', {
                  method: 'POST',
                  headers: { 'content-type': 'application/json' },
                  body: JSON.stringify({
                    email: `at-once-${count}-${p}-${i}-${a}@example.org`,
                    altcha: payload,
                  }),
                }),
              ),
            ),
          ),
        );
        const statuses = answers.map((r) => r.status);
        expect(statuses.filter((status) => status === 202)).toHaveLength(count);
        expect(statuses.filter((status) => status === 422)).toHaveLength(statuses.length - count);
        for (const refused of answers.filter((r) => r.status === 422)) {
          expect((await errorIn(refused)).message).toMatch(/already used/);
        }
      }
      await s.drain();
      expect(s.smtp.received.length - sent).toBe(4);
    } finally {
      if (other !== s.database) await other.close();
    }
  });

  it('keeps spent solutions until they expire, and takes a few expired ones away with each new one', async () => {
    await s.database.db.execute(sql`
      insert into altcha_spent (nonce, expires_at)
      select 'expired-' || i, now() - interval '1 minute' from generate_series(1, 6) as i`);
    const payload = await solve(await fetchChallenge(s.app));
    expect((await postJson(s, '/subscribe', { email: 'sweeps@example.org', altcha: payload })).status).toBe(
      202,
    );
    const [left] = await rows<{ expired: number }>(
      s.database.db,
      sql`select count(*)::int as expired from altcha_spent where expires_at < now()`,
    );
    // 4 of the 6 expired ones gone, and this one kept until its challenge expires.
    expect(Number(left?.expired)).toBe(2);
    const nonce = (JSON.parse(atob(payload)) as { challenge: Challenge }).challenge.parameters.nonce;
    expect(
      await rows(
        s.database.db,
        sql`select 1 from altcha_spent where nonce = ${nonce} and expires_at > now()`,
      ),
    ).toHaveLength(1);
  });

  it('accepts a form post with the widget’s field, and answers a missing one with a page', async () => {
    const payload = await solve(await fetchChallenge(s.app));
    const res = await postForm(s, '/subscribe', { email: 'form@example.org', altcha: payload });
    expect(res.status).toBe(303);

    const before = await tableCounts(s.database.db);
    const page = await postForm(s, '/subscribe', { email: 'no-js@example.org' });
    expect(page.status).toBe(422);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(await page.text()).toContain('needs JavaScript');
    expect(await tableCounts(s.database.db)).toEqual(before);
  });

  it('refuses a missing, expired, forged, tampered or unreadable solution: 422, nothing written, no email', async () => {
    await s.drain();
    const sent = s.smtp.received.length;
    await refusedWithNothingDone(s.subscribeJson('missing@example.org'), /needs JavaScript/);

    const expired = await createChallenge({
      algorithm: 'PBKDF2/SHA-256',
      cost: 1000,
      counter: 20,
      deriveKey,
      hmacSignatureSecret: KEY,
      expiresAt: new Date(Date.now() - 1000),
    });
    await refusedWithNothingDone(
      postJson(s, '/subscribe', { email: 'expired@example.org', altcha: await solve(expired) }),
      /expired/,
    );

    const forged = await createChallenge({
      algorithm: 'PBKDF2/SHA-256',
      cost: 1000,
      counter: 20,
      deriveKey,
      hmacSignatureSecret: 'another-key-that-is-not-the-services-0123',
      expiresAt: new Date(Date.now() + 60_000),
    });
    await refusedWithNothingDone(
      postJson(s, '/subscribe', { email: 'forged@example.org', altcha: await solve(forged) }),
      /did not pass/,
    );

    const real = await fetchChallenge(s.app);
    const { solution } = JSON.parse(atob(await solve(real)));
    const wrongKey = btoa(
      JSON.stringify({ challenge: real, solution: { ...solution, counter: solution.counter + 1 } }),
    );
    await refusedWithNothingDone(
      postJson(s, '/subscribe', { email: 'tampered@example.org', altcha: wrongKey }),
      /did not pass/,
    );
    const easier = btoa(
      JSON.stringify({ challenge: { ...real, parameters: { ...real.parameters, cost: 1 } }, solution }),
    );
    await refusedWithNothingDone(
      postJson(s, '/subscribe', { email: 'easier@example.org', altcha: easier }),
      /did not pass/,
    );
    for (const junk of ['not base64 at all!', btoa('{"challenge":1}'), btoa('null'), 'x'.repeat(5000)]) {
      await refusedWithNothingDone(
        postJson(s, '/subscribe', { email: 'junk@example.org', altcha: junk }),
        /did not pass/,
      );
    }
    expect(s.smtp.received).toHaveLength(sent);
  });

  it('answers as the OpenAPI document says', async () => {
    const api = await contractCheck(s);
    const challenge = await api.call('/altcha');
    expect(challenge.mismatches).toEqual([]);
    const payload = await solve((await challenge.res.json()) as Challenge);
    const ok = await api.call(
      '/subscribe',
      {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email: 'documented@example.org', altcha: payload }),
      },
      { validRequest: true },
    );
    expect(ok.res.status).toBe(202);
    expect(ok.mismatches).toEqual([]);
    const refused = await api.call('/subscribe', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'documented@example.org', altcha: payload }),
    });
    expect(refused.res.status).toBe(422);
    expect(refused.mismatches).toEqual([]);
  });
});

describe('with ALTCHA_HMAC_KEY unset', () => {
  let s: TestService;
  beforeAll(async () => {
    s = await createTestService();
  });
  afterAll(() => s.close());

  it('has no /altcha, and subscribes without a solution as before', async () => {
    expect((await s.app.request('/altcha')).status).toBe(404);
    expect((await s.subscribeJson('plain@example.org')).status).toBe(202);
    await s.drain();
    expect(s.smtp.to('plain@example.org')).toHaveLength(1);
  });
});
