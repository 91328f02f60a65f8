import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { FeedServer, Item } from './support/feeds.js';
import { rss, startFeedServer } from './support/feeds.js';
import {
  createProcessDatabase,
  killServiceProcesses,
  seedSubscribers as seedProcessSubscribers,
  startServiceProcess,
} from './support/process.js';
import { lettersPerAddress } from './support/sendout.js';
import { startSmtpSink } from './support/smtp.js';

// The feed watcher as it runs in production: inside the dispatcher process (`--worker`), set from the
// environment. The watcher's own behaviour is in tests/feed.test.ts.

let server: FeedServer;
let feedCount = 0;

beforeAll(async () => {
  server = await startFeedServer();
});
afterAll(async () => {
  await server?.close();
});

/** A fixture entry; `n` orders them in time (a larger n is newer). */
function item(prefix: string, n: number): Item {
  return {
    id: `tag:example.org,2025:${prefix}-${n}`,
    title: `${prefix} essay ${n}`,
    link: `https://example.org/essays/${prefix}-${n}/`,
    date: new Date(Date.UTC(2025, 0, 1 + n, 9, 0, 0)),
  };
}

describe('the watcher in the dispatcher process', { timeout: 90_000 }, () => {
  afterEach(async (context) => killServiceProcesses(context));

  it('takes FEED_MAX_BYTES from the environment: a feed over it is not read', async () => {
    const database = await createProcessDatabase();
    try {
      const path = `/feed-${++feedCount}.xml`;
      const items = Array.from({ length: 30 }, (_, i) => item('process-max-bytes', 30 - i));
      server.routes.set(path, { body: rss(items) });
      const worker = await startServiceProcess(
        { ...database.env, FEED_URL: server.url(path), FEED_MAX_BYTES: '2048', FEED_TIMEOUT_SECONDS: '5' },
        ['--worker'],
      );
      await worker.waitForOutput('the body is larger than 2048 bytes (FEED_MAX_BYTES)');
      expect(await worker.stop('SIGTERM')).toEqual({ code: 0, signal: null });
      expect(worker.output.stdout).not.toContain('feed read for the first time');
    } finally {
      await database.destroy();
    }
  });

  it('reads the feed at start, publishes a new entry once, and stops on SIGTERM', async () => {
    const [database, smtp] = await Promise.all([createProcessDatabase(), startSmtpSink()]);
    try {
      const p = 'process';
      const path = `/feed-${++feedCount}.xml`;
      server.routes.set(path, { body: rss([item(p, 1)]) });
      const env = {
        ...database.env,
        SMTP_URL: smtp.url,
        FEED_URL: server.url(path),
        FEED_POLL_SECONDS: '10',
      };
      const people = await seedProcessSubscribers(database, 2);

      const first = await startServiceProcess(env, ['--worker']);
      await first.waitForOutput('feed read for the first time');
      expect(await first.stop('SIGTERM')).toEqual({ code: 0, signal: null });

      server.routes.set(path, { body: rss([item(p, 2), item(p, 1)]) });
      const second = await startServiceProcess(env, ['--worker']);
      await second.waitForOutput('essay published from the feed');
      await smtp.waitFor(people.length);
      expect(await second.stop('SIGTERM')).toEqual({ code: 0, signal: null });
      expect(second.output.stdout.match(/essay published from the feed/g)).toHaveLength(1);

      expect([...lettersPerAddress(smtp.received, `${p} essay 2`).values()]).toEqual([1, 1]);
      expect(smtp.received).toHaveLength(people.length);
    } finally {
      await smtp.close();
      await database.destroy();
    }
  });
});
