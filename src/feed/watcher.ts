import { sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { rows } from '../db/client.js';
import type { EssayInput } from '../essays/service.js';
import { essayInput, publish } from '../essays/service.js';
import type { Logger } from '../log.js';
import { describeError } from '../log.js';
import type { Polling } from '../poll.js';
import { startPolling } from '../poll.js';
import { FeedError, fetchFeed } from './fetch.js';
import type { FeedEntry } from './parse.js';
import { entrySlug, sha256Hex } from './slug.js';

/** What the watcher works with: a database, a fetch and a clock. Nothing of HTTP serving. */
export interface FeedDeps {
  db: Db;
  /** The feed to watch (FEED_URL). */
  feedUrl: string;
  log: Logger;
  fetch?: typeof fetch;
  now?: () => Date;
  /** How long one request may take, body included (FEED_TIMEOUT_SECONDS; default 20 s, as there). */
  timeoutMs?: number;
  /** Largest body read; past it reading stops and the poll fails (FEED_MAX_BYTES; default 5 MB, as there). */
  maxBytes?: number;
  /** Called after an essay was published: wakes a dispatcher in this process. */
  kick?: () => void;
  /** Aborts a poll under way (the process is stopping). */
  signal?: AbortSignal;
}

export interface PollResult {
  /** `first_read`: the feed was new to us, its entries were recorded as already published and nothing sent. */
  outcome: 'first_read' | 'read' | 'not_modified' | 'failed';
  /** Slugs of the essays this poll published. */
  published: string[];
  /** Entries recorded for the first time (whatever became of them). */
  recorded: number;
  /** Why the poll failed, as logged. */
  error?: string;
}

type EntryStatus = 'archived' | 'published' | 'already_published' | 'invalid';

const DEFAULT_TIMEOUT_MS = 20_000;
const DEFAULT_MAX_BYTES = 5 * 1024 * 1024;

/** The key a feed is stored under: a hash of its URL, so a long URL with a secret in it is stored once. */
export function feedKey(feedUrl: string): string {
  return sha256Hex(new URL(feedUrl).href);
}

/**
 * Reads the feed once and publishes each entry that is new since the last read, through the same idempotent
 * publish as the API. Never throws: a broken feed or an unreachable database logs one line and changes
 * nothing. For the Node loop (startFeedWatcher) and for a Workers cron trigger alike.
 */
export async function pollFeedOnce(deps: FeedDeps): Promise<PollResult> {
  const { db, feedUrl, log } = deps;
  const key = feedKey(feedUrl);
  const failed = (error: string): PollResult => ({ outcome: 'failed', published: [], recorded: 0, error });
  let fetched: Awaited<ReturnType<typeof fetchFeed>>;
  let entries: FeedEntry[];
  try {
    const [state] = await rows<{ etag: string | null; lastModified: string | null }>(
      db,
      sql`select etag, last_modified as "lastModified" from feeds where feed_key = ${key}`,
    );
    fetched = await fetchFeed(deps.fetch ?? fetch, feedUrl, state ?? {}, {
      timeoutMs: deps.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      maxBytes: deps.maxBytes ?? DEFAULT_MAX_BYTES,
      signal: deps.signal,
    });
    if (fetched.status === 'not_modified') return { outcome: 'not_modified', published: [], recorded: 0 };
    // The parser (feedsmith, fast-xml-parser, entities: about 14 MiB resident) is loaded by the first feed
    // that changed, not by every process that serves the feed routes.
    entries = (await import('./parse.js')).parseFeedEntries(fetched.body, feedUrl);
  } catch (error) {
    if (deps.signal?.aborted) return failed('stopped');
    const reason = error instanceof FeedError ? error.message : describeError(error).error;
    log.warn({ msg: `feed not read, nothing changed: ${reason}`, feed: shownUrl(feedUrl) });
    return failed(String(reason));
  }
  try {
    const { olderEntries, invalidEntries, ...result } = await record(deps, key, entries, fetched);
    for (const slug of result.published) {
      log.info({ msg: 'essay published from the feed', slug, feed: shownUrl(feedUrl) });
    }
    for (const id of olderEntries) {
      log.info({
        msg: 'feed entry dated before the newest one seen: recorded without sending (to send it: npm run cli -- feed send <entry>)',
        entry: id.slice(0, 300),
      });
    }
    for (const id of invalidEntries) {
      log.warn({
        msg: 'feed entry has no usable http(s) link or title: recorded without sending',
        entry: id.slice(0, 300),
      });
    }
    if (result.outcome === 'first_read') {
      log.info({
        msg: `feed read for the first time: its ${result.recorded} entries are recorded as already published and nothing was sent`,
        feed: shownUrl(feedUrl),
      });
    }
    if (result.published.length > 0) deps.kick?.();
    return result;
  } catch (error) {
    log.error({
      msg: 'feed read but not recorded, nothing changed; the next poll tries again',
      feed: shownUrl(feedUrl),
      ...describeError(error),
    });
    return failed(String(describeError(error).error));
  }
}

interface Recorded {
  outcome: 'first_read' | 'read';
  published: string[];
  recorded: number;
  /** Ids of entries seen for the first time but dated before the newest seen: recorded, not sent. */
  olderEntries: string[];
  /** Ids of entries without a usable link or title: recorded, not sent. */
  invalidEntries: string[];
}

/**
 * Records the entries in one transaction, under a lock on the feed's row: several processes polling at once
 * take turns, and the (feed, entry) primary key lets only one of them insert, and so publish, each entry.
 */
async function record(
  deps: FeedDeps,
  key: string,
  entries: FeedEntry[],
  fetched: { etag: string | null; lastModified: string | null },
): Promise<Recorded> {
  const now = (deps.now ?? (() => new Date()))();
  return deps.db.transaction(async (t): Promise<Recorded> => {
    const tx = t as unknown as Db;
    const created = await rows<{ feedKey: string }>(
      tx,
      sql`insert into feeds (feed_key, url, first_read_at, last_read_at)
          values (${key}, ${deps.feedUrl}, ${now.toISOString()}::timestamptz, ${now.toISOString()}::timestamptz)
          on conflict (feed_key) do nothing
          returning feed_key as "feedKey"`,
    );
    const firstRead = created.length > 0;
    const [feed] = await rows<{ newestEntryAt: Date | string | null }>(
      tx,
      sql`select newest_entry_at as "newestEntryAt" from feeds where feed_key = ${key} for update`,
    );
    const newest = feed?.newestEntryAt ? new Date(feed.newestEntryAt) : undefined;

    const planned = entries.map((entry) => {
      const slug = entrySlug(entry.id);
      const essay = essayInput.safeParse({
        slug,
        title: entry.title ?? entry.summary?.slice(0, 100) ?? entry.url,
        url: entry.url,
        summary: entry.summary,
      });
      const status: EntryStatus = !essay.success
        ? 'invalid'
        : firstRead || isOlder(entry.date, newest)
          ? 'archived'
          : 'published';
      return { entry, slug, essay: essay.success ? essay.data : undefined, status };
    });
    const payload = JSON.stringify(
      planned.map(({ entry, slug, essay, status }) => ({
        entry_key: sha256Hex(entry.id),
        entry_id: entry.id,
        slug,
        title: essay?.title ?? null,
        url: essay?.url ?? null,
        summary: essay?.summary ?? null,
        entry_at: entry.date?.toISOString() ?? null,
        status,
      })),
    );
    // Only rows this statement inserts come back: an entry seen before (by any process) is left alone.
    const inserted = await rows<{ entryKey: string }>(
      tx,
      sql`insert into feed_entries (feed_key, entry_key, entry_id, slug, title, url, summary, entry_at, status, seen_at)
          select ${key}, v.entry_key, v.entry_id, v.slug, v.title, v.url, v.summary, v.entry_at,
                 v.status::feed_entry_status, ${now.toISOString()}::timestamptz
          from json_to_recordset(${payload}::json)
            as v(entry_key text, entry_id text, slug text, title text, url text, summary text,
                 entry_at timestamptz, status text)
          on conflict (feed_key, entry_key) do nothing
          returning entry_key as "entryKey"`,
    );
    const fresh = new Set(inserted.map((r) => r.entryKey));

    const published: string[] = [];
    for (const { entry, essay, status } of planned) {
      if (status !== 'published' || !essay || !fresh.has(sha256Hex(entry.id))) continue;
      const outcome = await publishEntry(tx, key, entry.id, essay, now, { byAddressToo: true });
      if (outcome === 'published') published.push(essay.slug);
    }

    const recordedAs = (wanted: EntryStatus) =>
      planned.filter((p) => p.status === wanted && fresh.has(sha256Hex(p.entry.id))).map((p) => p.entry.id);
    // Dates in the future count as now: one mistyped year must not hide every entry after it.
    const dates = entries.flatMap((e) => (e.date ? [Math.min(e.date.getTime(), now.getTime())] : []));
    const newestNow = dates.length > 0 ? new Date(Math.max(...dates)).toISOString() : null;
    await tx.execute(
      sql`update feeds
          set etag = ${fetched.etag}, last_modified = ${fetched.lastModified}, last_read_at = ${now.toISOString()}::timestamptz,
              newest_entry_at = case
                when newest_entry_at is null then ${newestNow}::timestamptz
                when ${newestNow}::timestamptz is null then newest_entry_at
                else greatest(newest_entry_at, ${newestNow}::timestamptz) end
          where feed_key = ${key}`,
    );
    return {
      outcome: firstRead ? 'first_read' : 'read',
      published,
      recorded: fresh.size,
      olderEntries: firstRead ? [] : recordedAs('archived'),
      invalidEntries: recordedAs('invalid'),
    } satisfies Recorded;
  });
}

/** An entry dated at or before the newest one already seen is an old one reappearing, not a new essay. */
function isOlder(date: Date | undefined, newest: Date | undefined): boolean {
  return Boolean(date && newest && date.getTime() <= newest.getTime());
}

/**
 * Publishes one entry (inside the caller's transaction) and records what became of it. With `byAddressToo`,
 * an essay already published at the same address (through the API, or under another id) counts as this one.
 */
async function publishEntry(
  tx: Db,
  key: string,
  entryId: string,
  essay: EssayInput,
  now: Date,
  options: { byAddressToo: boolean },
): Promise<'published' | 'already_published'> {
  const sameAddress = options.byAddressToo
    ? await rows(tx, sql`select 1 from essays where url = ${essay.url} limit 1`)
    : [];
  const created = sameAddress.length === 0 && (await publish(tx, essay)).created;
  const status: EntryStatus = created ? 'published' : 'already_published';
  await tx.execute(
    sql`update feed_entries
        set status = ${status}::feed_entry_status, published_at = ${created ? now.toISOString() : null}::timestamptz
        where feed_key = ${key} and entry_key = ${sha256Hex(entryId)}`,
  );
  return created ? 'published' : 'already_published';
}

export interface SendEntryResult {
  outcome: 'published' | 'already_published' | 'not_found' | 'invalid';
  entry?: { id: string; slug: string; title: string | null; url: string | null };
}

/**
 * A publisher's opt-in: publishes one entry the watcher recorded without sending (there at the first read,
 * or older than the newest seen), found by its id or its link. Idempotent like any publish.
 */
export async function sendFeedEntry(
  deps: Pick<FeedDeps, 'db' | 'feedUrl' | 'now' | 'kick' | 'log'>,
  idOrLink: string,
): Promise<SendEntryResult> {
  const key = feedKey(deps.feedUrl);
  const now = (deps.now ?? (() => new Date()))();
  const result = await deps.db.transaction(async (t): Promise<SendEntryResult> => {
    const tx = t as unknown as Db;
    const [found] = await rows<{
      entryId: string;
      slug: string;
      title: string | null;
      url: string | null;
      summary: string | null;
    }>(
      tx,
      sql`select entry_id as "entryId", slug, title, url, summary from feed_entries
          where feed_key = ${key} and (entry_key = ${sha256Hex(idOrLink)} or url = ${asUrl(idOrLink)})
          order by (entry_key = ${sha256Hex(idOrLink)}) desc, seen_at desc
          limit 1
          for update`,
    );
    if (!found) return { outcome: 'not_found' };
    const entry = { id: found.entryId, slug: found.slug, title: found.title, url: found.url };
    const essay = essayInput.safeParse({
      slug: found.slug,
      title: found.title,
      url: found.url,
      summary: found.summary,
    });
    if (!essay.success) return { outcome: 'invalid', entry };
    const outcome = await publishEntry(tx, key, found.entryId, essay.data, now, { byAddressToo: false });
    return { outcome, entry };
  });
  if (result.outcome === 'published') {
    deps.log.info({ msg: 'essay published from the feed on request', slug: result.entry?.slug });
    deps.kick?.();
  }
  return result;
}

/** A running watcher: polls at start, then every interval; stop() aborts a request under way. */
export type FeedWatcher = Polling;

/** Starts the Node loop around pollFeedOnce. */
export function startFeedWatcher(deps: FeedDeps & { intervalMs: number }): FeedWatcher {
  return startPolling((signal) => pollFeedOnce({ ...deps, signal }), deps.intervalMs);
}

/** A link as the watcher stores it (URL.href), so "https://example.com" finds "https://example.com/". */
function asUrl(value: string): string {
  try {
    return new URL(value).href;
  } catch {
    return value;
  }
}

/** The feed's address for logs: no credentials, no query string (private feeds put tokens there). */
export function shownUrl(feedUrl: string): string {
  const url = new URL(feedUrl);
  return `${url.origin}${url.pathname}${url.search ? '?…' : ''}`;
}
