import { getConnInfo } from '@hono/node-server/conninfo';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../src/app.js';
import type { Database } from '../src/db/client.js';
import { rows } from '../src/db/client.js';
import { openPostgres } from '../src/db/postgres.js';
import type { Deps } from '../src/deps.js';
import { silentLogger } from '../src/log.js';
import { createRenderer } from '../src/mail/render.js';
import { loadTemplates } from '../src/mail/templates-fs.js';
import { errorIn, subscribersFor, tableCounts } from './support/reader.js';
import type { TestService } from './support/service.js';
import { createTestService } from './support/service.js';

type App = TestService['app'];

/** A subscription as a site's fetch() sends it, through a proxy that appended `forwardedFor`. */
function subscribeVia(app: App, email: string, forwardedFor?: string, headers: Record<string, string> = {}) {
  return Promise.resolve(
    app.request('/subscribe', {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(forwardedFor === undefined ? {} : { 'x-forwarded-for': forwardedFor }),
        ...headers,
      },
      body: JSON.stringify({ email }),
    }),
  );
}

/** Another view of the service over the same database, as a second process would have. */
function appOver(s: TestService, database: Database, extra: Partial<Deps> = {}): App {
  return createApp({
    config: s.config,
    database,
    renderer: createRenderer(loadTemplates()),
    log: silentLogger,
    ...extra,
  });
}

async function statuses(responses: Promise<Response>[]): Promise<number[]> {
  return (await Promise.all(responses)).map((r) => r.status);
}

const count = (list: number[], status: number) => list.filter((s) => s === status).length;

// A day-long window keeps these tests far from a window boundary; the mail-bomb case uses the defaults.
const DAY = '86400';

describe('the per-IP limit behind a proxy (TRUST_PROXY=true)', () => {
  let s: TestService;
  beforeAll(async () => {
    s = await createTestService({
      TRUST_PROXY: 'true',
      SUBSCRIBE_LIMIT_PER_IP: '3',
      RATE_LIMIT_WINDOW_SECONDS: DAY,
    });
  });
  afterAll(() => s?.close());

  it('an IP gets SUBSCRIBE_LIMIT_PER_IP attempts per window, then 429; another IP is not held back', async () => {
    for (let i = 0; i < 3; i++) {
      expect((await subscribeVia(s.app, `ip${i}@example.org`, '203.0.113.10')).status).toBe(202);
    }
    const refused = await subscribeVia(s.app, 'ip3@example.org', '203.0.113.10');
    expect(refused.status).toBe(429);
    expect((await errorIn(refused)).code).toBe('rate_limited');
    expect((await subscribeVia(s.app, 'ip3@example.org', '203.0.113.11')).status).toBe(202);
  });

  it('counts the address the proxy appended: forged earlier X-Forwarded-For entries change nothing', async () => {
    const answers: number[] = [];
    for (let i = 0; i < 5; i++) {
      const forged = `10.0.0.${i}, 192.0.2.${i}`;
      answers.push((await subscribeVia(s.app, `forged${i}@example.org`, `${forged}, 198.51.100.20`)).status);
    }
    expect(answers).toEqual([202, 202, 202, 429, 429]);
  });

  it('a refused attempt writes no subscriber and no confirmation, and no email goes out for it', async () => {
    const before = await tableCounts(s.database.db);
    expect((await subscribeVia(s.app, 'refused@example.org', '198.51.100.20')).status).toBe(429);
    expect(await tableCounts(s.database.db)).toEqual(before);
    await s.drain();
    expect(s.smtp.to('refused@example.org')).toHaveLength(0);
    expect(await subscribersFor(s.database.db, 'refused@example.org')).toHaveLength(0);
  });
});

describe('the per-IP limit without a proxy (TRUST_PROXY unset)', () => {
  let s: TestService;
  let app: App;
  /** What the Node adapter hands the app: the socket the request came on. */
  const fromSocket = (remoteAddress: string) => ({
    incoming: { socket: { remoteAddress, remotePort: 40_000, remoteFamily: 'IPv4' } },
  });
  const subscribeFrom = (remoteAddress: string, email: string, forwardedFor: string) =>
    app.request(
      '/subscribe',
      {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-forwarded-for': forwardedFor },
        body: JSON.stringify({ email }),
      },
      fromSocket(remoteAddress),
    );

  beforeAll(async () => {
    s = await createTestService({ SUBSCRIBE_LIMIT_PER_IP: '3', RATE_LIMIT_WINDOW_SECONDS: DAY });
    // The peer address exactly as src/entry/node.ts reads it.
    app = appOver(s, s.database, { peerAddress: (c) => getConnInfo(c).remote.address });
  });
  afterAll(() => s?.close());

  it('a forged X-Forwarded-For is ignored: the socket address is what counts', async () => {
    const answers: number[] = [];
    for (let i = 0; i < 5; i++) {
      answers.push((await subscribeFrom('192.0.2.1', `socket${i}@example.org`, `198.51.100.${i}`)).status);
    }
    expect(answers).toEqual([202, 202, 202, 429, 429]);
    expect((await subscribeFrom('192.0.2.2', 'socket9@example.org', '198.51.100.1')).status).toBe(202);
  });
});

describe('the per-address limit', () => {
  let s: TestService;
  beforeAll(async () => {
    s = await createTestService({
      TRUST_PROXY: 'true',
      SUBSCRIBE_LIMIT_PER_ADDRESS: '5',
      RATE_LIMIT_WINDOW_SECONDS: DAY,
    });
  });
  afterAll(() => s?.close());

  it('an address gets SUBSCRIBE_LIMIT_PER_ADDRESS attempts per window from any IPs, however it is spelled', async () => {
    const spellings = [
      'target@example.org',
      'TARGET@example.org',
      ' target@EXAMPLE.org ',
      'Target@Example.Org',
    ];
    const answers: number[] = [];
    for (let i = 0; i < 7; i++) {
      answers.push(
        (await subscribeVia(s.app, spellings[i % spellings.length] ?? '', `203.0.113.${i}`)).status,
      );
    }
    expect(answers).toEqual([202, 202, 202, 202, 202, 429, 429]);
    expect((await subscribeVia(s.app, 'someone-else@example.org', '203.0.113.1')).status).toBe(202);
  });

  it('a JSON client gets 429 with code rate_limited, a message, and Retry-After in seconds', async () => {
    const res = await subscribeVia(s.app, 'target@example.org', '203.0.113.50');
    expect(res.status).toBe(429);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    const error = await errorIn(res);
    expect(error.code).toBe('rate_limited');
    expect(error.message).toMatch(/try again in \d+ minutes?/i);
    const retryAfter = Number(res.headers.get('retry-after'));
    expect(Number.isInteger(retryAfter)).toBe(true);
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(86_400);
  });

  it('a browser gets a 429 page saying when to try again, with Retry-After and no redirect', async () => {
    const res = await s.app.request('/subscribe', {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        accept: 'text/html,application/xhtml+xml,*/*;q=0.8',
        'x-forwarded-for': '203.0.113.51',
      },
      body: new URLSearchParams({ email: 'target@example.org' }).toString(),
    });
    expect(res.status).toBe(429);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(res.headers.get('location')).toBeNull();
    const page = await res.text();
    expect(page).toMatch(/^<!doctype html>/i);
    expect(page).toContain('Too many attempts');
    expect(page).toMatch(/try again in \d+ minutes?/i);
  });

  it('counters are kept under a hash: the rate_limits table holds no address', async () => {
    const keys = await rows<{ key: string }>(s.database.db, sql`select key from rate_limits`);
    expect(keys.length).toBeGreaterThan(0);
    for (const { key } of keys) {
      expect(key).not.toContain('@');
      expect(key.toLowerCase()).not.toContain('target');
    }
  });

  it('a new window starts the count again', async () => {
    expect((await subscribeVia(s.app, 'target@example.org', '203.0.113.60')).status).toBe(429);
    // As if the window had passed: move every counter's window back by its length.
    await s.database.db.execute(
      sql`update rate_limits set window_start = window_start - interval '86400 seconds'`,
    );
    const answers: number[] = [];
    for (let i = 0; i < 6; i++) {
      answers.push((await subscribeVia(s.app, 'target@example.org', `203.0.113.${70 + i}`)).status);
    }
    expect(answers).toEqual([202, 202, 202, 202, 202, 429]);
  });
});

describe('limits shared by every process on one database', () => {
  let s: TestService;
  let second: Database;
  let other: App;
  beforeAll(async () => {
    s = await createTestService({
      TRUST_PROXY: 'true',
      SUBSCRIBE_LIMIT_PER_IP: '4',
      RATE_LIMIT_WINDOW_SECONDS: DAY,
    });
    // On a server, the second "process" has its own connection pool; the embedded database has one user.
    second = s.database.url ? await openPostgres(s.database.url, { poolSize: 5 }) : s.database;
    other = appOver(s, second);
  });
  afterAll(async () => {
    if (second && second !== s.database) await second.close();
    await s?.close();
  });

  it('attempts through two app instances count against one limit', async () => {
    const answers: number[] = [];
    for (let i = 0; i < 6; i++) {
      const app = i % 2 === 0 ? s.app : other;
      answers.push((await subscribeVia(app, `shared${i}@example.org`, '198.51.100.77')).status);
    }
    expect(answers).toEqual([202, 202, 202, 202, 429, 429]);
  });

  it('concurrent attempts through both instances let exactly the limit through', async () => {
    const answers = await statuses(
      Array.from({ length: 16 }, (_, i) =>
        subscribeVia(i % 2 === 0 ? s.app : other, `race${i}@example.org`, '198.51.100.88'),
      ),
    );
    expect(count(answers, 202)).toBe(4);
    expect(count(answers, 429)).toBe(12);
  });
});

describe('a burst of attempts through one process', () => {
  let s: TestService;
  beforeAll(async () => {
    s = await createTestService({
      TRUST_PROXY: 'true',
      SUBSCRIBE_LIMIT_PER_IP: '7',
      SUBSCRIBE_LIMIT_PER_ADDRESS: '3',
      RATE_LIMIT_WINDOW_SECONDS: DAY,
    });
  });
  afterAll(() => s?.close());

  it('attempts counted together get the verdicts they would get one after another, and all count', async () => {
    // 30 at once from two IPs: IP A sends 20 for 20 addresses, IP B 10 for one address.
    const answers = await statuses([
      ...Array.from({ length: 20 }, (_, i) => subscribeVia(s.app, `burst-a${i}@example.org`, '198.51.100.1')),
      ...Array.from({ length: 10 }, () => subscribeVia(s.app, 'burst-b@example.org', '198.51.100.2')),
    ]);
    expect(count(answers.slice(0, 20), 202)).toBe(7);
    expect(count(answers.slice(20), 202)).toBe(3);
    expect(count(answers, 429)).toBe(20);
    const counters = await rows<{ key: string; hits: number }>(
      s.database.db,
      sql`select key, hits from rate_limits where key like 'subscribe-ip:%' order by key`,
    );
    expect(counters.map((c) => Number(c.hits))).toEqual([20, 10]);
    expect(await subscribersFor(s.database.db, 'burst-b@example.org')).toHaveLength(1);
  });
});

describe('the mail-bomb case: one victim, many IPs', () => {
  let s: TestService;
  beforeAll(async () => {
    // The defaults an operator gets (the test harness turns limits off unless asked).
    s = await createTestService({
      TRUST_PROXY: 'true',
      SUBSCRIBE_LIMIT_PER_IP: '30',
      SUBSCRIBE_LIMIT_PER_ADDRESS: '5',
    });
  });
  afterAll(() => s?.close());

  it('100 rapid requests for one address from 100 IPs: 5 taken, 95 refused, and one confirmation email', async () => {
    const victim = 'victim@example.org';
    const answers = await statuses(
      Array.from({ length: 100 }, (_, i) =>
        subscribeVia(s.app, i % 2 === 0 ? victim : victim.toUpperCase(), `198.18.${i >> 8}.${i & 255}`),
      ),
    );
    expect(count(answers, 202)).toBe(5);
    expect(count(answers, 429)).toBe(95);

    // Nothing is mailed on the request path; the dispatcher sends at most one per CONFIRM_RESEND_MINUTES.
    expect(s.smtp.received).toHaveLength(0);
    await s.drain();
    expect(s.smtp.to(victim)).toHaveLength(1);
    expect(s.smtp.received).toHaveLength(1);

    const confirmations = await rows<{ status: string; n: number }>(
      s.database.db,
      sql`select status::text as status, count(*)::int as n from confirmations group by status order by status`,
    );
    expect(confirmations.map((r) => [r.status, Number(r.n)])).toEqual([
      ['sent', 1],
      ['skipped', 4],
    ]);
  });
});
