import { createHash } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { Db } from './db/client.js';
import { rows } from './db/client.js';
import { hotStatement } from './db/hot.js';

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
const countStatements = new Map<number, ReturnType<typeof hotStatement<Counted>>>();

/**
 * The statement that counts a request against `n` limits (values `key0`, `window0`, …): one text per
 * number of limits, built once.
 *
 * Committed without waiting for the WAL to reach the disk (synchronous_commit off for this statement's
 * transaction alone): a per-IP counter is one row that every request from that address updates, and a
 * durable commit holds its lock for a disk flush, so requests from one address would queue one flush
 * each. If PostgreSQL itself crashes, the last fraction of a second of counts may be lost (never
 * corrupted, never a row of anyone's data): a few attempts more than the limit, once.
 */
function countStatement(n: number) {
  let found = countStatements.get(n);
  if (!found) {
    found = hotStatement<Counted>((value) => {
      const tuples = Array.from({ length: n }, (_, i) => {
        const window = value(`window${i}`);
        return sql`(${value(`key${i}`)}, to_timestamp(floor(extract(epoch from now()) / ${window}) * ${window}), 1)`;
      });
      return sql`
        insert into rate_limits (key, window_start, hits)
        select * from (values ${sql.join(tuples, sql`, `)}) as v
        where set_config('synchronous_commit', 'off', true) = 'off'
        on conflict (key) do update
        set hits = case when rate_limits.window_start = excluded.window_start then rate_limits.hits + 1 else 1 end,
            window_start = excluded.window_start
        returning key, hits, ceil(extract(epoch from window_start - now()))::int as retry_after`;
    });
    countStatements.set(n, found);
  }
  return found;
}

/**
 * Counts one request against each limit, in one statement, in the database: the limits hold across every
 * process that shares it. Fixed windows; a request over any limit is refused.
 */
export async function hitLimits(db: Db, limits: Limit[]): Promise<LimitVerdict> {
  const active = limits.filter((l) => l.max > 0);
  if (active.length === 0) return { allowed: true, retryAfter: 0 };
  const values: Record<string, unknown> = {};
  for (const [i, l] of active.entries()) {
    values[`key${i}`] = l.key;
    values[`window${i}`] = l.windowSeconds;
  }
  const counted = await countStatement(active.length)(db, values);
  let allowed = true;
  let retryAfter = 0;
  for (const row of counted) {
    const limit = active.find((l) => l.key === row.key);
    if (!limit || Number(row.hits) <= limit.max) continue;
    allowed = false;
    retryAfter = Math.max(retryAfter, Number(row.retry_after) + limit.windowSeconds);
  }
  return { allowed, retryAfter: Math.max(1, retryAfter) };
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
