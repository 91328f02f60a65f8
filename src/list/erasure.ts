import { sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { rows } from '../db/client.js';
import { addressKey } from '../http/rate-limit.js';

/** Erasure's statements, shared by the publisher's erasure (service.ts) and the dispatcher's pruning. */

/**
 * The erasure's one transaction, for any number of subscribers whose letters are stopped: their ledger rows
 * folded into the anonymous per-essay counts, their rows gone with their confirmations (and the consent
 * recorded on them) and events, and their addresses' rate-limit counters. Returns how many of each went.
 */
export async function eraseRows(tx: Db, ids: number[]): Promise<{ subscribers: number; deliveries: number }> {
  const set = sql`(select value::int as id from json_array_elements_text(${JSON.stringify(ids)}::json))`;
  // The ledger rows go first, then the subscribers: the order in which the dispatcher's hand-over locks
  // them (claimForSending), so that the two can't wait on each other. Looked up by the ledger's primary
  // key, essay by essay (no index on deliveries(subscriber_id) to slow the fan-out).
  const [folded] = await rows<{ n: number }>(
    tx,
    sql`with gone as (
          delete from deliveries d using essays e, ${set} x
          where d.essay_id = e.id and d.subscriber_id = x.id
          returning d.essay_id, case d.status when 'pending' then 'skipped' when 'claimed' then 'skipped'
                                              when 'sending' then 'unknown' else d.status::text end as status
        ), counted as (
          insert into erased_deliveries (essay_id, status, count)
          select essay_id, status::delivery_status, count(*)::int from gone group by essay_id, status
          on conflict (essay_id, status) do update set count = erased_deliveries.count + excluded.count
        )
        select count(*)::int as n from gone`,
  );
  const erased = await rows<{ email: string }>(
    tx,
    sql`delete from subscribers where id in (select id from ${set} x) returning email`,
  );
  if (erased.length === 0) return { subscribers: 0, deliveries: 0 };
  const keys = erased.map((e) => `subscribe-address:${addressKey(e.email)}`);
  await tx.execute(
    sql`delete from rate_limits where key in (select json_array_elements_text(${JSON.stringify(keys)}::json))`,
  );
  return { subscribers: erased.length, deliveries: Number(folded?.n ?? 0) };
}

/**
 * Erases signups never confirmed (issue 26): pending subscribers who asked more than `days` ago, whose last
 * request is that old too, and who hold no confirmation link still valid or still to be mailed. Erased as
 * the erasure does (a pending subscriber has no letter on its way: only confirmed ones are handed over),
 * `batchSize` at a time, each batch its own short transaction. Returns how many were erased.
 */
export async function pruneStaleSignups(db: Db, days: number, batchSize = 500): Promise<number> {
  if (days <= 0) return 0;
  let total = 0;
  for (;;) {
    const erased = await db.transaction(async (t) => {
      const tx = t as unknown as Db;
      // Locked rows are left to whoever holds them (a confirmation under way, another dispatcher's prune);
      // a row confirmed meanwhile is no longer pending when the lock is granted, and is left out.
      const stale = await rows<{ id: number }>(
        tx,
        sql`select s.id from subscribers s
            where s.status = 'pending' and s.created_at < now() - make_interval(days => ${days}::int)
              and not exists (
                select 1 from confirmations c
                where c.subscriber_id = s.id
                  and (c.status = 'queued' or c.expires_at > now()
                       or c.requested_at >= now() - make_interval(days => ${days}::int)))
            order by s.created_at, s.id
            limit ${batchSize}
            for update of s skip locked`,
      );
      if (stale.length === 0) return 0;
      const { subscribers } = await eraseRows(
        tx,
        stale.map((r) => Number(r.id)),
      );
      return subscribers;
    });
    total += erased;
    if (erased < batchSize) return total;
  }
}
