/**
 * Baseline: POST /subscribe as plain node:http + postgres.js, running the same statements as the service
 * (src/http/rate-limit.ts: the rate-limit counters, committed asynchronously; src/reader/service.ts: the
 * subscriber upsert, its event and the confirmation request), prepared, with no framework, validation
 * library or logging around them. It runs them once per request, as a plain server would: the service
 * runs each for all the requests that arrived while the last one ran (src/db/coalesce.ts).
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import postgres from 'postgres';

// The same pool size as the service's (DB_POOL_SIZE, default 10).
const sql = postgres(process.env.DATABASE_URL as string, {
  max: Number(process.env.DB_POOL_SIZE ?? 10),
  onnotice: () => {},
});
const limit = 1_000_000;
const window = 3600;
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', async () => {
    try {
      const text = Buffer.concat(chunks).toString('utf8');
      const form = (req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded');
      const body = (form ? Object.fromEntries(new URLSearchParams(text)) : JSON.parse(text)) as {
        email?: string;
        name?: string;
      };
      const email = String(body.email ?? '').trim();
      if (!EMAIL.test(email) || email.length > 254) {
        return send(
          res,
          422,
          '{"error":{"code":"invalid_email","message":"That does not look like an email address."}}',
        );
      }
      const ip = `subscribe-ip:${req.socket.remoteAddress}`;
      const address = `subscribe-address:${createHash('sha256').update(email.toLowerCase()).digest('base64url').slice(0, 32)}`;
      const counted = await sql`
        insert into rate_limits (key, window_start, hits)
        select v.key, to_timestamp(floor(extract(epoch from now()) / v.window_seconds) * v.window_seconds), v.hits
        from json_to_recordset(${sql.json([
          { key: ip, window_seconds: window, hits: 1 },
          { key: address, window_seconds: window, hits: 1 },
        ])}::json) as v(key text, window_seconds int, hits int)
        where set_config('synchronous_commit', 'off', true) = 'off'
        order by v.key
        on conflict (key) do update
        set hits = case when rate_limits.window_start = excluded.window_start then rate_limits.hits + excluded.hits
                   else excluded.hits end,
            window_start = excluded.window_start
        returning key, hits, ceil(extract(epoch from window_start - now()))::int as retry_after`;
      if (counted.some((r) => Number(r.hits) > limit))
        return send(res, 429, '{"error":{"code":"rate_limited"}}');
      await sql`
        with subscriber as (
          insert into subscribers (email, unsubscribe_token)
          select v.email, v.token
          from json_to_recordset(${sql.json([{ email, token: randomBytes(32).toString('base64url') }])}::json)
            as v(email text, token text)
          order by lower(v.email)
          on conflict ((lower(email))) do update set updated_at = now()
          returning id, lower(email) as key
        ), request as (
          select s.id, r.name, r.n
          from rows from (json_to_recordset(${sql.json([{ email, name: body.name ?? null }])}::json)
            as (email text, name text)) with ordinality as r(email, name, n)
          join subscriber s on s.key = lower(r.email)
        ), event as (
          insert into subscriber_events (subscriber_id, kind) select id, 'subscribed' from request order by n
        )
        insert into confirmations (subscriber_id, name)
        select id, name from request order by n`;
      if (form) {
        res.writeHead(303, { location: `http://127.0.0.1:${process.env.PORT}/check-inbox` });
        res.end();
        return;
      }
      send(res, 202, '{"status":"pending"}');
    } catch {
      send(res, 500, '{"error":{"code":"internal"}}');
    }
  });
});

function send(res: import('node:http').ServerResponse, status: number, body: string) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(body);
}

server.listen(Number(process.env.PORT), '127.0.0.1', () => {
  process.stdout.write(`listening on ${process.env.PORT}\n`);
});

// Stopped by the benchmark: exit normally, so that a CPU profile (BENCH_PROFILE_DIR) is written.
process.on('SIGTERM', () => process.exit(0));
