import { sql } from 'drizzle-orm';
import type { Db } from '../../src/db/client.js';
import { rows } from '../../src/db/client.js';
import type { TestService } from './service.js';

/** POSTs fields as a browser form does (application/x-www-form-urlencoded). */
export function postForm(
  s: TestService,
  path: string,
  fields: Record<string, string> | string,
  headers: Record<string, string> = {},
): Promise<Response> {
  return Promise.resolve(
    s.app.request(path, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body: typeof fields === 'string' ? fields : new URLSearchParams(fields).toString(),
    }),
  );
}

/** POSTs a JSON body (any value, or a raw string sent as is). */
export function postJson(
  s: TestService,
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<Response> {
  return Promise.resolve(
    s.app.request(path, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    }),
  );
}

export interface SubscriberRow {
  id: number;
  email: string;
  name: string | null;
  status: string;
  unsubscribe_token: string;
}

/** The subscriber rows for an address, compared as the service compares them (case-insensitively). */
export function subscribersFor(db: Db, email: string): Promise<SubscriberRow[]> {
  return rows<SubscriberRow>(
    db,
    sql`select id, email, name, status::text as status, unsubscribe_token
        from subscribers where lower(email) = lower(${email}) order by id`,
  );
}

/** How many subscribers and confirmation requests exist: a bad request must change neither. */
export async function tableCounts(db: Db): Promise<{ subscribers: number; confirmations: number }> {
  const [counts] = await rows<{ subscribers: number; confirmations: number }>(
    db,
    sql`select (select count(*)::int from subscribers) as subscribers,
               (select count(*)::int from confirmations) as confirmations`,
  );
  return { subscribers: Number(counts?.subscribers), confirmations: Number(counts?.confirmations) };
}

/** Every row of the reader's tables, to show that a request changed nothing at all. */
export async function readerTables(db: Db): Promise<unknown[]> {
  return [
    await rows(db, sql`select * from subscribers order by id`),
    await rows(db, sql`select * from confirmations order by id`),
  ];
}

/** The response headers as an object, without the ones that differ by the moment (Date). */
export function headersWithoutDate(res: Response): Record<string, string> {
  const out: Record<string, string> = {};
  res.headers.forEach((value, key) => {
    if (key !== 'date') out[key] = value;
  });
  return out;
}

/** The `{"error":{code, message}}` of a JSON error answer. */
export async function errorIn(res: Response): Promise<{ code: string; message: string }> {
  const body = (await res.json()) as { error: { code: string; message: string } };
  return body.error;
}
