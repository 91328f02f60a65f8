import { createHash } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { jsonParam, rows } from '../db/client.js';
import { coalesced } from '../db/coalesce.js';

export interface Limit {
  /** A name for what is counted, e.g. `subscribe-ip:203.0.113.9`. Hash anything personal first. */
  key: string;
  /** Requests allowed per window (0: no limit). */
  max: number;
  windowSeconds: number;
}

export interface LimitVerdict {
  allowed: boolean;
  /** Seconds until the fullest window resets. */
  retryAfter: number;
}

type Counted = { key: string; hits: number; retry_after: number };

/**
 * Counts a batch of requests against their limits in one statement: each key once, by how many of the
 * batch's requests it counts (`payload`: a JSON array of {key, window_seconds, hits}). Keys are taken in
 * one order (sorted), so two processes' batches can never wait for each other's rows in a cycle.
 *
 * Committed without waiting for the WAL to reach the disk (synchronous_commit off for this statement's
 * transaction alone): a per-IP counter is one row that every request from that address updates, and a
 * durable commit holds its lock for a disk flush, so requests from one address would queue one flush
 * each. If PostgreSQL itself crashes, the last fraction of a second of counts may be lost (never
 * corrupted, never a row of anyone's data): a few attempts more than the limit, once.
 */
const countBatch = (db: Db, payload: string) =>
  rows<Counted>(
    db,
    sql`
    insert into rate_limits (key, window_start, hits)
    select v.key, to_timestamp(floor(extract(epoch from now()) / v.window_seconds) * v.window_seconds), v.hits
    from json_to_recordset(${payload}::json) as v(key text, window_seconds int, hits int)
    where set_config('synchronous_commit', 'off', true) = 'off'
    order by v.key
    on conflict (key) do update
    set hits = case when rate_limits.window_start = excluded.window_start then rate_limits.hits + excluded.hits
               else excluded.hits end,
        window_start = excluded.window_start
    returning key, hits, ceil(extract(epoch from window_start - now()))::int as retry_after`,
  );

/**
 * Counts requests against their limits, a batch at a time (see coalesced()): under load every request
 * from one IP updates the same row, and counted one statement each, 50 concurrent requests queued on that
 * row's lock. The queue cost PostgreSQL more CPU time than the rest of a subscription and set its slowest
 * answers. Each request gets the verdict it would have got counted alone, after the ones before it.
 */
const countRequests = coalesced(async (db: Db, requests: Limit[][]): Promise<LimitVerdict[]> => {
  const perKey = new Map<string, { key: string; window_seconds: number; hits: number }>();
  for (const limits of requests) {
    for (const l of limits) {
      const found = perKey.get(l.key);
      if (found) found.hits++;
      else perKey.set(l.key, { key: l.key, window_seconds: l.windowSeconds, hits: 1 });
    }
  }
  const counted = await countBatch(db, jsonParam([...perKey.values()]));
  // Each key's count before this batch; the batch's requests are then counted one after another.
  const before = new Map<string, { hits: number; retryAfter: number }>();
  for (const row of counted) {
    const hits = Number(row.hits) - (perKey.get(row.key)?.hits ?? 0);
    before.set(row.key, { hits, retryAfter: Number(row.retry_after) });
  }
  return requests.map((limits) => {
    let allowed = true;
    let retryAfter = 0;
    for (const limit of limits) {
      const row = before.get(limit.key);
      if (!row) continue;
      row.hits++;
      if (row.hits <= limit.max) continue;
      allowed = false;
      retryAfter = Math.max(retryAfter, row.retryAfter + limit.windowSeconds);
    }
    return { allowed, retryAfter: Math.max(1, retryAfter) };
  });
});

/**
 * Counts one request against each limit, in the database: the limits hold across every process that
 * shares it. Fixed windows; a request over any limit is refused (and still counted).
 */
export async function hitLimits(db: Db, limits: Limit[]): Promise<LimitVerdict> {
  const active = limits.filter((l) => l.max > 0);
  if (active.length === 0) return { allowed: true, retryAfter: 0 };
  return countRequests(db, active);
}

/** Forgets windows that ended long ago. */
export async function pruneLimits(db: Db): Promise<void> {
  await db.execute(sql`delete from rate_limits where window_start < now() - interval '2 days'`);
}

/** A stable, non-reversible key part for an email address. */
export function addressKey(email: string): string {
  return createHash('sha256').update(email.trim().toLowerCase()).digest('base64url').slice(0, 32);
}

/** The verdict `hitLimits` would give for what is counted so far, without counting this request. */
export async function limitHits(db: Db, limit: Limit): Promise<LimitVerdict> {
  if (limit.max <= 0) return { allowed: true, retryAfter: 0 };
  const [row] = await rows<{ hits: number; retry_after: number }>(
    db,
    sql`
      select hits, ceil(extract(epoch from window_start - now()))::int as retry_after from rate_limits
      where key = ${limit.key}
        and window_start = to_timestamp(floor(extract(epoch from now()) / ${limit.windowSeconds}) * ${limit.windowSeconds})`,
  );
  if (!row || Number(row.hits) <= limit.max) return { allowed: true, retryAfter: 0 };
  return { allowed: false, retryAfter: Math.max(1, Number(row.retry_after) + limit.windowSeconds) };
}
