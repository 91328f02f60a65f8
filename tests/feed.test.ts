import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../src/app.js';
import { parseConfig } from '../src/config.js';
import type { Database } from '../src/db/client.js';
import { rows } from '../src/db/client.js';
import { openPostgres } from '../src/db/postgres.js';
import { parseFeedEntries } from '../src/feed/parse.js';
import { entrySlug } from '../src/feed/slug.js';
import type { FeedDeps } from '../src/feed/watcher.js';
import { pollFeedOnce } from '../src/feed/watcher.js';
import { createLogger } from '../src/log.js';
import { createRenderer } from '../src/mail/render.js';
import { loadTemplates } from '../src/mail/templates-fs.js';
import type { FeedServer, Item } from './support/feeds.js';
import { atom, rss, startFeedServer } from './support/feeds.js';
import { freePort } from './support/process.js';
import { addresses, lettersPerAddress, seedSubscribers } from './support/sendout.js';
import type { TestService } from './support/service.js';
import { createTestService, PUBLISHER_TOKEN } from './support/service.js';

let s: TestService;
let server: FeedServer;
const readers = addresses('feed-reader', 3);
const logLines: string[] = [];
const log = createLogger((line) => logLines.push(line));
let feedCount = 0;

beforeAll(async () => {
  [s, server] = await Promise.all([createTestService(), startFeedServer()]);
  await seedSubscribers(s.database.db, 'confirmed', readers);
  await seedSubscribers(s.database.db, 'pending', addresses('feed-pending', 1));
});
afterAll(async () => {
  if (process.env.FEED_TEST_LOG) console.log(logLines.join(''));
  await server?.close();
  await s?.close();
});

const day = (n: number) => new Date(Date.UTC(2025, 0, 1 + n, 9, 0, 0));

/** A fixture entry; `n` orders them in time (a larger n is newer). */
function item(prefix: string, n: number, changes: Partial<Item> = {}): Item {
  return {
    id: `tag:example.org,2025:${prefix}-${n}`,
    title: `${prefix} essay ${n}`,
    link: `https://example.org/essays/${prefix}-${n}/`,
    date: day(n),
    ...changes,
  };
}

/** A new feed path on the server (so each test starts with a feed the watcher has never seen). */
function newFeed(format: 'rss' | 'atom', items: Item[]) {
  const path = `/feed-${++feedCount}.${format === 'rss' ? 'xml' : 'atom'}`;
  const serve = (next: Item[], extra: Partial<Parameters<typeof server.routes.set>[1]> = {}) =>
    server.routes.set(path, { body: format === 'rss' ? rss(next) : atom(next), ...extra });
  serve(items);
  // The watcher's own time limit (20 s): on a loaded machine a fetch can take seconds, the first one most
  // (undici loads then). Only the test of a server that hangs sets a short one, and waits for it.
  const deps: FeedDeps = { db: s.database.db, feedUrl: server.url(path), log };
  return { path, serve, deps, poll: (more: Partial<FeedDeps> = {}) => pollFeedOnce({ ...deps, ...more }) };
}

/** Letters at the sink about one essay (by title), per confirmed reader, after the dispatcher is done. */
async function lettersAbout(title: string): Promise<number[]> {
  await s.drain();
  const counts = lettersPerAddress(s.smtp.received, title);
  return [...counts.keys()].some((to) => !readers.includes(to))
    ? [-1]
    : readers.map((r) => counts.get(r) ?? 0);
}

async function essayCount(): Promise<number> {
  const [row] = await rows<{ n: number }>(s.database.db, sql`select count(*)::int as n from essays`);
  return Number(row?.n);
}

async function watcherTables(feedUrl: string): Promise<unknown> {
  return {
    feeds: await rows(s.database.db, sql`select * from feeds where url = ${feedUrl}`),
    entries: await rows(
      s.database.db,
      sql`select e.* from feed_entries e join feeds f using (feed_key) where f.url = ${feedUrl} order by entry_id`,
    ),
    essays: await essayCount(),
  };
}

describe.each(['rss', 'atom'] as const)('a feed watched as %s', (format) => {
  it('sends nothing the first time it reads a feed: the archive is recorded as already published', async () => {
    const p = `${format}-first`;
    const feed = newFeed(format, [item(p, 2), item(p, 1)]);
    const before = await essayCount();
    const result = await feed.poll();
    expect(result).toMatchObject({ outcome: 'first_read', published: [], recorded: 2 });
    expect(await essayCount()).toBe(before);
    expect(await lettersAbout(`${p} essay 1`)).toEqual([0, 0, 0]);
    expect(await lettersAbout(`${p} essay 2`)).toEqual([0, 0, 0]);
  });

  it('sends a new entry once, and nothing more when it is edited, reordered or an old one comes back', async () => {
    const p = `${format}-new`;
    const feed = newFeed(format, [item(p, 2), item(p, 1)]);
    await feed.poll();

    feed.serve([item(p, 3), item(p, 2), item(p, 1)]);
    const result = await feed.poll();
    expect(result.outcome).toBe('read');
    expect(result.published).toHaveLength(1);
    expect(result.published[0]).toMatch(new RegExp(`^${p}-3-[0-9a-f]{12}$`));
    expect(await lettersAbout(`${p} essay 3`)).toEqual([1, 1, 1]);

    // The same feed again.
    expect((await feed.poll()).published).toEqual([]);

    // Edited: new title, summary and date; same id.
    const edited = item(p, 3, { title: `${p} essay 3, revised`, summary: 'Rewritten.', date: day(30) });
    feed.serve([edited, item(p, 2), item(p, 1)]);
    expect((await feed.poll()).published).toEqual([]);

    // Reordered.
    feed.serve([item(p, 1), edited, item(p, 2)]);
    expect((await feed.poll()).published).toEqual([]);

    // An old entry comes back on top with a fresh date, and an old one never seen shows up.
    feed.serve([item(p, 1, { date: day(40) }), item(p, 0), edited, item(p, 2)]);
    expect((await feed.poll()).published).toEqual([]);

    expect(await lettersAbout(`${p} essay 3`)).toEqual([1, 1, 1]);
    expect(await lettersAbout(`${p} essay 3, revised`)).toEqual([0, 0, 0]);
    for (const n of [0, 1, 2]) expect(await lettersAbout(`${p} essay ${n}`)).toEqual([0, 0, 0]);
  });

  it('sends an entry once even when it shows up under a second feed', async () => {
    const p = `${format}-twofeeds`;
    const first = newFeed(format, [item(p, 1)]);
    const second = newFeed(format === 'rss' ? 'atom' : 'rss', [item(p, 1)]);
    await first.poll();
    await second.poll();
    first.serve([item(p, 2), item(p, 1)]);
    second.serve([item(p, 2), item(p, 1)]);
    const results = [await first.poll(), await second.poll()];
    expect(results.map((r) => r.published.length)).toEqual([1, 0]);
    expect(await lettersAbout(`${p} essay 2`)).toEqual([1, 1, 1]);
  });

  it('asks with the stored validators and changes nothing when the server answers 304', async () => {
    const p = `${format}-304`;
    const feed = newFeed(format, [item(p, 1)]);
    const route = server.routes.get(feed.path);
    if (!route) throw new Error('no route');
    route.etag = '"v1"';
    route.lastModified = day(1).toUTCString();
    await feed.poll();
    // The feed changes on the server, but the server (wrongly) still says "not modified": nothing happens.
    feed.serve([item(p, 2), item(p, 1)], { etag: '"v1"', lastModified: day(1).toUTCString() });
    const tables = await watcherTables(feed.deps.feedUrl);
    const result = await feed.poll();
    expect(result.outcome).toBe('not_modified');
    const last = server.requests.filter((r) => r.path === feed.path).at(-1);
    expect(last?.headers['if-none-match']).toBe('"v1"');
    expect(last?.headers['if-modified-since']).toBe(day(1).toUTCString());
    expect(last?.status).toBe(304);
    expect(await watcherTables(feed.deps.feedUrl)).toEqual(tables);

    // A new version with a new validator is read, and its new entry sent.
    feed.serve([item(p, 2), item(p, 1)], { etag: '"v2"' });
    expect((await feed.poll()).published).toHaveLength(1);
    expect(await lettersAbout(`${p} essay 2`)).toEqual([1, 1, 1]);
  });

  it('publishes each new entry once when two watchers poll at the same moment', async () => {
    const p = `${format}-race`;
    const feed = newFeed(format, [item(p, 1)]);
    // Both read the feed for the first time at once: neither sends anything.
    // On PostgreSQL the second watcher has its own connections, as another process would.
    const second: Database | undefined = s.database.url
      ? await openPostgres(s.database.url, { poolSize: 2 })
      : undefined;
    const secondDb = second?.db ?? s.database.db;
    try {
      const firsts = await Promise.all([feed.poll(), feed.poll({ db: secondDb })]);
      expect(firsts.map((r) => r.outcome).sort()).toEqual(['first_read', 'read']);
      expect(firsts.flatMap((r) => r.published)).toEqual([]);
      feed.serve([item(p, 3), item(p, 2), item(p, 1)]);
      const results = await Promise.all([feed.poll(), feed.poll({ db: secondDb }), feed.poll()]);
      expect(results.flatMap((r) => r.published)).toHaveLength(2);
      expect(await lettersAbout(`${p} essay 2`)).toEqual([1, 1, 1]);
      expect(await lettersAbout(`${p} essay 3`)).toEqual([1, 1, 1]);
    } finally {
      await second?.close();
    }
  });

  it('sends an old entry once when the publisher asks for it', async () => {
    const p = `${format}-optin`;
    const feed = newFeed(format, [item(p, 2), item(p, 1)]);
    await feed.poll();
    const send = (app: { request: typeof s.app.request }, id: string, token = PUBLISHER_TOKEN) =>
      app.request(`/api/feed/entries/${encodeURIComponent(id)}/send`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}` },
      });
    // The harness's app has no FEED_URL: the endpoint says so.
    const unset = await send(s.app, item(p, 1).id);
    expect(unset.status).toBe(404);
    expect(((await unset.json()) as { error: { message: string } }).error.message).toMatch(/FEED_URL/);
    // The same service with FEED_URL set.
    const app = createApp({
      config: { ...s.config, feedUrl: feed.deps.feedUrl },
      database: s.database,
      renderer: createRenderer(loadTemplates()),
      log,
    });
    const post = (id: string) => send(app, id);
    expect((await send(app, item(p, 1).id, 'wrong-token-0123456789')).status).toBe(401);
    expect((await post('tag:example.org,2025:never-seen')).status).toBe(404);
    const first = await post(item(p, 1).id);
    expect(first.status).toBe(202);
    const body = (await first.json()) as {
      essay: { title: string; url: string };
      sendout: { total: number };
    };
    expect(body.essay).toMatchObject({ title: `${p} essay 1`, url: item(p, 1).link });
    expect(body.sendout.total).toBe(3);
    // Again, by its link this time: the same essay, nothing more.
    expect((await post(item(p, 1).link)).status).toBe(200);
    expect(await lettersAbout(`${p} essay 1`)).toEqual([1, 1, 1]);
    // And the watcher doesn't send it again either.
    feed.serve([item(p, 1, { date: day(50) }), item(p, 2)]);
    expect((await feed.poll()).published).toEqual([]);
    expect(await lettersAbout(`${p} essay 1`)).toEqual([1, 1, 1]);
    expect(await lettersAbout(`${p} essay 2`)).toEqual([0, 0, 0]);
  });
});

describe('the feed settings', () => {
  it('are FEED_URL (off when unset) and FEED_POLL_SECONDS (300 by default), checked at start', () => {
    expect(parseConfig({})).toMatchObject({ feedUrl: undefined, feedPollMs: 300_000 });
    expect(parseConfig({ FEED_URL: 'https://example.org/feed.xml', FEED_POLL_SECONDS: '60' })).toMatchObject({
      feedUrl: 'https://example.org/feed.xml',
      feedPollMs: 60_000,
    });
    expect(() => parseConfig({ FEED_URL: 'ftp://example.org/feed.xml' })).toThrow(/FEED_URL=.*RSS or Atom/);
    expect(() => parseConfig({ FEED_POLL_SECONDS: '1' })).toThrow(/FEED_POLL_SECONDS=.*at least 10/);
  });

  it('FEED_TIMEOUT_SECONDS (20) and FEED_MAX_BYTES (5 MiB) bound each read, and a bad value stops the start', () => {
    expect(parseConfig({})).toMatchObject({ feedTimeoutMs: 20_000, feedMaxBytes: 5 * 1024 * 1024 });
    expect(parseConfig({ FEED_TIMEOUT_SECONDS: '5', FEED_MAX_BYTES: '1048576' })).toMatchObject({
      feedTimeoutMs: 5_000,
      feedMaxBytes: 1_048_576,
    });
    const refused: [Record<string, string>, RegExp][] = [
      [{ FEED_TIMEOUT_SECONDS: '0' }, /FEED_TIMEOUT_SECONDS="0": expected at least 1\n/],
      [{ FEED_TIMEOUT_SECONDS: '1.5' }, /FEED_TIMEOUT_SECONDS="1.5": expected a whole number/],
      [{ FEED_TIMEOUT_SECONDS: '3600' }, /FEED_TIMEOUT_SECONDS="3600": expected at most 300/],
      [{ FEED_MAX_BYTES: '5MB' }, /FEED_MAX_BYTES="5MB": expected a whole number/],
      [{ FEED_MAX_BYTES: '100' }, /FEED_MAX_BYTES="100": expected at least 1024/],
      [{ FEED_MAX_BYTES: String(2 ** 30) }, /FEED_MAX_BYTES="1073741824": expected at most 67108864/],
    ];
    for (const [env, message] of refused) {
      expect(() => parseConfig(env), JSON.stringify(env)).toThrow(message);
      expect(() => parseConfig(env)).toThrow(/Fix these variables and start again/);
    }
  });
});

describe('an entry', () => {
  it('gets a valid slug that depends on its id alone', () => {
    const ids = [
      'https://example.org/essays/on-walking/',
      'https://example.org/?p=123',
      'tag:example.org,2025:Über-das-Gehen',
      'urn:uuid:1225c695-cfb8-4ebb-aaaa-80da344efa6a',
      '!!!',
      `https://example.org/${'very-long-'.repeat(100)}`,
    ];
    const slugs = ids.map(entrySlug);
    for (const slug of slugs) {
      expect(slug).toMatch(/^[a-z0-9][a-z0-9._~-]*$/);
      expect(slug.length).toBeLessThanOrEqual(200);
    }
    expect(slugs[0]).toMatch(/^on-walking-[0-9a-f]{12}$/);
    expect(slugs[2]).toMatch(/^uber-das-gehen-/);
    expect(new Set(slugs).size).toBe(ids.length);
    expect(ids.map(entrySlug)).toEqual(slugs);
    expect(entrySlug('https://example.org/essays/on-walking')).not.toBe(slugs[0]);
  });

  it('is read as plain text with an absolute link, from RSS, Atom and JSON Feed', () => {
    const base = 'https://example.org/feeds/all.xml';
    const [fromRss] = parseFeedEntries(
      `<rss version="2.0"><channel><title>t</title><link>https://example.org/</link><description>d</description>
        <item><title>Caf&amp;eacute; &amp;amp; tea</title><guid>https://example.org/cafe</guid>
        <description><![CDATA[<p>One&nbsp;<b>two</b></p><script>x()</script>]]></description></item>
      </channel></rss>`,
      base,
    );
    expect(fromRss).toEqual({
      id: 'https://example.org/cafe',
      title: 'Café & tea',
      url: 'https://example.org/cafe',
      summary: 'One two',
      date: undefined,
    });
    const [fromAtom] = parseFeedEntries(
      `<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title><id>x</id><updated>2025-01-01T00:00:00Z</updated>
        <entry><id>urn:x:1</id><title type="html">&lt;em&gt;On&lt;/em&gt; walking</title>
        <link rel="edit" href="/edit/1"/><link href="../essays/on-walking"/>
        <updated>2025-02-01T00:00:00Z</updated></entry></feed>`,
      base,
    );
    expect(fromAtom).toMatchObject({
      id: 'urn:x:1',
      title: 'On walking',
      url: 'https://example.org/essays/on-walking',
      date: new Date('2025-02-01T00:00:00Z'),
    });
    const [fromJson] = parseFeedEntries(
      JSON.stringify({
        version: 'https://jsonfeed.org/version/1.1',
        title: 't',
        items: [{ id: '7', url: 'https://example.org/7', title: 'Seven', content_text: 'Text.' }],
      }),
      base,
    );
    expect(fromJson).toMatchObject({
      id: '7',
      url: 'https://example.org/7',
      title: 'Seven',
      summary: 'Text.',
    });
  });
});

describe('a broken feed', () => {
  // Each case: how the feed breaks, what the log says, and the poll's settings if not the watcher's own.
  const cases: [
    string,
    (feed: ReturnType<typeof newFeed>, next: Item[]) => void,
    RegExp,
    Partial<FeedDeps>?,
  ][] = [
    ['answers 500', (f, next) => f.serve(next, { status: 500 }), /the server answered 500/],
    [
      'is not well-formed XML',
      (f, next) => server.routes.set(f.path, { body: rss(next).replace('</item>', '</itme>') }),
      /not well-formed XML \(line \d+/,
    ],
    [
      'is cut off mid-document',
      (f, next) => server.routes.set(f.path, { body: rss(next).slice(0, 600) }),
      /not well-formed XML/,
    ],
    [
      'is an HTML page',
      (f) =>
        server.routes.set(f.path, {
          body: '<!doctype html><html><body>Moved</body></html>',
          contentType: 'text/html',
        }),
      /not well-formed XML|not an RSS, Atom or JSON feed/,
    ],
    [
      'does not answer in time',
      (f, next) => f.serve(next, { hang: true }),
      /no complete answer within 200 ms/,
      { timeoutMs: 200 },
    ],
    [
      'sends a body without end',
      (f, next) => server.routes.set(f.path, { body: rss(next), endlessBytes: 50 * 1024 * 1024 }),
      /the body is larger than 5 MB/,
    ],
  ];

  it.each(cases)('that %s changes nothing and logs one line', async (_name, breakIt, reason, settings) => {
    const p = `broken-${feedCount + 1}`;
    const feed = newFeed('rss', [item(p, 1)]);
    await feed.poll();
    const next = [item(p, 2), item(p, 1)];
    breakIt(feed, next);
    const tables = await watcherTables(feed.deps.feedUrl);
    const logged = logLines.length;
    server.endlessWritten = 0;

    const result = await feed.poll(settings);
    expect(result.outcome).toBe('failed');
    const lines = logLines.slice(logged);
    expect(lines).toHaveLength(1);
    const line = JSON.parse(lines[0] ?? '{}') as { level: string; msg: string; feed: string };
    expect(line.level).toBe('warn');
    expect(line.msg).toMatch(/^feed not read, nothing changed: /);
    expect(line.msg).toMatch(reason);
    expect(line.feed).toBe(feed.deps.feedUrl);
    expect(lines[0]?.trimEnd()).not.toMatch(/\n|\bat .*\.ts:\d+/);
    expect(await watcherTables(feed.deps.feedUrl)).toEqual(tables);
    // Reading stopped soon after the limit, long before the server's 50 MB.
    expect(server.endlessWritten).toBeLessThan(20 * 1024 * 1024);

    // Mended, the feed's new entry is sent, once.
    feed.serve(next);
    expect((await feed.poll()).published).toHaveLength(1);
    expect(await lettersAbout(`${p} essay 2`)).toEqual([1, 1, 1]);
  });

  it('over a small FEED_MAX_BYTES is not read: nothing changes, and the log names the setting', async () => {
    const p = 'over-max-bytes';
    const feed = newFeed('rss', [item(p, 1)]);
    await feed.poll();
    const next = Array.from({ length: 30 }, (_, i) => item(p, 30 - i));
    feed.serve(next);
    expect(rss(next).length).toBeGreaterThan(4096);
    const tables = await watcherTables(feed.deps.feedUrl);
    const logged = logLines.length;

    const result = await feed.poll({ maxBytes: 4096 });
    expect(result.outcome).toBe('failed');
    expect(result.error).toBe('the body is larger than 4096 bytes (FEED_MAX_BYTES)');
    expect(logLines.slice(logged).join('')).toContain('the body is larger than 4096 bytes (FEED_MAX_BYTES)');
    expect(await watcherTables(feed.deps.feedUrl)).toEqual(tables);

    // The default limit reads the same feed.
    expect((await feed.poll()).published).toHaveLength(29);
  });

  it('that is unreachable changes nothing and logs one line', async () => {
    const logged = logLines.length;
    const feedUrl = `http://127.0.0.1:${await freePort()}/feed.xml`;
    const result = await pollFeedOnce({ db: s.database.db, feedUrl, log });
    expect(result.outcome).toBe('failed');
    const lines = logLines.slice(logged);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/could not fetch it \(ECONNREFUSED\)/);
    expect(await rows(s.database.db, sql`select 1 from feeds where url = ${feedUrl}`)).toEqual([]);
  });
});
