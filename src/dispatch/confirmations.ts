import { sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { rows } from '../db/client.js';
import { hashToken, newToken } from '../tokens.js';
import { ms } from './queries.js';

/** The queued confirmation requests: the dispatcher decides which need an email and issues their tokens. */

export interface ConfirmationToSend {
  id: number;
  attempts: number;
  email: string;
  name: string | null;
  /** Raw token for the link; only its hash is stored. */
  token: string;
}

/** Takes up to `limit` queued confirmation requests, hiding them from other dispatchers for a lease. */
export async function claimConfirmations(
  db: Db,
  limit: number,
  leaseMs: number,
): Promise<{ id: number; attempts: number }[]> {
  return rows<{ id: number; attempts: number }>(
    db,
    sql`
      with picked as (
        select id from confirmations
        where status = 'queued' and (not_before is null or not_before <= now())
        order by id limit ${limit}
        for update skip locked
      )
      update confirmations c set not_before = now() + ${ms(leaseMs)}, attempts = c.attempts + 1
      from picked where c.id = picked.id
      returning c.id, c.attempts`,
  );
}

/**
 * Decides one request: nothing for a confirmed address or one mailed an unused link within `resendMs`
 * (a link the owner used, then unsubscribed, does not hold back their return); otherwise a new token is
 * issued. The subscriber's row is locked so two dispatchers can't both decide to send.
 */
export async function issueConfirmation(
  db: Db,
  id: number,
  resendMs: number,
  ttlMs: number,
): Promise<ConfirmationToSend | undefined> {
  const token = newToken();
  return db.transaction(async (tx) => {
    const [target] = await rows<{ subscriber_id: number; status: string; recent: boolean }>(
      tx,
      sql`
        select s.id as subscriber_id, s.status::text as status,
               exists (select 1 from confirmations o
                       where o.subscriber_id = s.id and o.id <> ${id} and o.status = 'sent'
                         and o.confirmed_at is null
                         and o.sent_at > now() - ${ms(resendMs)}) as recent
        from confirmations c join subscribers s on s.id = c.subscriber_id
        where c.id = ${id} and c.status = 'queued'
        for update of s`,
    );
    if (!target) return undefined;
    if (target.status === 'confirmed' || target.recent) {
      await tx.execute(sql`update confirmations set status = 'skipped', not_before = null where id = ${id}`);
      return undefined;
    }
    const [sent] = await rows<Omit<ConfirmationToSend, 'token'>>(
      tx,
      sql`
        update confirmations c
        set status = 'sent', token_hash = ${hashToken(token)}, sent_at = now(),
            expires_at = now() + ${ms(ttlMs)}, not_before = null
        from subscribers s
        where c.id = ${id} and s.id = c.subscriber_id
        returning c.id, c.attempts, s.email, coalesce(c.name, s.name) as name`,
    );
    return sent && { ...sent, token };
  });
}

/** The email did not go: queue the request again after `retryMs`, or give up. */
export async function confirmationNotSent(
  db: Db,
  id: number,
  outcome: { retryMs: number | null; error: string },
): Promise<void> {
  const status = outcome.retryMs === null ? 'failed' : 'queued';
  await db.execute(sql`
    update confirmations
    set status = ${status}::confirmation_status,
        token_hash = null, sent_at = null, expires_at = null, last_error = ${outcome.error},
        not_before = now() + ${ms(outcome.retryMs ?? 0)}
    where id = ${id}`);
}
