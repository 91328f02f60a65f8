import { sql } from 'drizzle-orm';
import type { Db } from '../../src/db/client.js';
import { rows } from '../../src/db/client.js';
import type { SubscriberStatus } from '../../src/db/schema.js';
import type { Dispatcher } from '../../src/dispatch/dispatcher.js';
import type { EssayView, SendoutView } from '../../src/essays/service.js';
import { newToken } from '../../src/tokens.js';
import type { TestService } from './service.js';
import { PUBLISHER_TOKEN } from './service.js';
import type { ReceivedEmail } from './smtp.js';

/** Helpers for send-out tests: many subscribers at once, the ledger as rows, letters counted per address. */

export interface SeededSubscriber {
  id: number;
  email: string;
  status: SubscriberStatus;
  unsubscribeToken: string;
}

/** `count` addresses like `prefix-0007@example.org`. */
export function addresses(prefix: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix}-${String(i).padStart(4, '0')}@example.org`);
}

/** Inserts subscribers straight into the table (one statement), as if they had gone through the flow. */
export async function seedSubscribers(
  db: Db,
  status: SubscriberStatus,
  emails: string[],
): Promise<SeededSubscriber[]> {
  if (emails.length === 0) return [];
  const payload = JSON.stringify(emails.map((email) => ({ email, token: newToken() })));
  const seeded = await rows<SeededSubscriber>(
    db,
    sql`
      insert into subscribers (email, status, unsubscribe_token, confirmed_at)
      select v.email, ${status}::subscriber_status, v.token,
             case when ${status} = 'confirmed' then now() end
      from json_to_recordset(${payload}::json) as v(email text, token text)
      returning id::int as id, email, status::text as status, unsubscribe_token as "unsubscribeToken"`,
  );
  return seeded.map((r) => ({ ...r, id: Number(r.id) }));
}

export interface DeliveryRow {
  email: string;
  subscriberId: number;
  status: string;
  attempts: number;
  lastError: string | null;
  claimedBy: string | null;
}

/** The essay's rows in the delivery ledger, by address. */
export async function deliveriesOf(db: Db, slug: string): Promise<DeliveryRow[]> {
  const found = await rows<DeliveryRow>(
    db,
    sql`
      select s.email, s.id::int as "subscriberId", d.status::text as status, d.attempts::int as attempts,
             d.last_error as "lastError", d.claimed_by::text as "claimedBy"
      from deliveries d join essays e on e.id = d.essay_id join subscribers s on s.id = d.subscriber_id
      where e.slug = ${slug.toLowerCase()}
      order by s.email`,
  );
  return found.map((r) => ({ ...r, subscriberId: Number(r.subscriberId), attempts: Number(r.attempts) }));
}

/** A subscriber's status, by address. */
export async function subscriberStatus(db: Db, email: string): Promise<string | undefined> {
  const [found] = await rows<{ status: string }>(
    db,
    sql`select status::text as status from subscribers where lower(email) = lower(${email})`,
  );
  return found?.status;
}

/** The letters about one essay (by its title, the subject) that reached the sink, counted per address. */
export function lettersPerAddress(received: ReceivedEmail[], title: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const mail of received) {
    if (mail.parsed.subject !== title) continue;
    counts.set(mail.to, (counts.get(mail.to) ?? 0) + 1);
  }
  return counts;
}

/** What POST /api/essays and GET /api/essays/:slug answer. */
export interface EssayAnswer {
  essay: Omit<EssayView, 'id'>;
  sendout: SendoutView;
}

/** What every error answers. */
export interface ErrorAnswer {
  error: { code: string; message: string };
}

/** The body of a publisher API answer. */
export async function answer(res: Response): Promise<EssayAnswer> {
  return (await res.json()) as EssayAnswer;
}

/** GET /api/essays/:slug with the publisher token. */
export async function progress(s: TestService, slug: string): Promise<Response> {
  return s.app.request(`/api/essays/${encodeURIComponent(slug)}`, {
    headers: { authorization: `Bearer ${PUBLISHER_TOKEN}` },
  });
}

/** Runs a dispatcher's rounds until one finds nothing to do (like `TestService.drain`, for any dispatcher). */
export async function drainWith(dispatcher: Dispatcher): Promise<void> {
  for (let round = 0; round < 10_000; round++) {
    if ((await dispatcher.runOnce()) === 0) return;
  }
  throw new Error('the dispatcher never ran out of work');
}

/** One header of a raw message, unfolded (undefined when absent). */
export function headerOf(raw: string, name: string): string | undefined {
  const head = raw.split(/\r?\n\r?\n/, 1)[0] ?? '';
  const unfolded = head.replace(/\r?\n[ \t]+/g, ' ');
  const prefix = `${name.toLowerCase()}:`;
  const line = unfolded.split(/\r?\n/).find((l) => l.toLowerCase().startsWith(prefix));
  return line?.slice(prefix.length).trim();
}
