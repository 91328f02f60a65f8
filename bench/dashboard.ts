/**
 * The dashboard at N subscribers and 10 finished send-outs of N deliveries each, on a fresh PostgreSQL
 * database seeded set-based (generate_series: every row written by the database, none sent from here), through
 * the app in memory with a signed-in session: the server time of each page and of each progress poll
 * (median and p95 of `runs` requests one after another), against the 100 ms target. The progress poll is
 * also measured on a send-out of 10 deliveries: with running counts it costs the same at N. The baseline, from
 * the same database: what a poll cost when it counted the send-out's rows (count(*) … group by status).
 */
import { sql } from 'drizzle-orm';
import { createApp } from '../src/app.js';
import { parseConfig } from '../src/config.js';
import { rows } from '../src/db/client.js';
import { MIGRATIONS_FOLDER } from '../src/db/open.js';
import { openPostgres } from '../src/db/postgres.js';
import type { Deps } from '../src/deps.js';
import { silentLogger } from '../src/log.js';
import { createRenderer } from '../src/mail/render.js';
import { loadTemplates } from '../src/mail/templates-fs.js';
import { signIn } from '../tests/support/admin.js';
import { createServerDatabase, dropServerDatabase } from '../tests/support/db.js';
import type { Timing } from './support.js';
import { repeat, timing } from './support.js';

const TOKEN = 'bench-publisher-token-0123456789';
/** Finished send-outs of N deliveries each, as the issue's scale asks. */
const SENDOUTS = 10;
/** The seeded send-outs went out at this many letters a second (their timelines span N / RATE seconds). */
const RATE = 1000;
export const TARGET_MS = 100;

export interface DashboardFigure {
  /** What was asked: a page, or a poll. */
  what: string;
  path: string;
  timing: Timing;
}

export interface DashboardResult {
  n: number;
  /** Rows in the ledger when measured. */
  deliveries: number;
  seedSeconds: number;
  figures: DashboardFigure[];
  /** The API's progress poll on a send-out of N deliveries and on one of 10. */
  pollAtN: Timing;
  pollAtTen: Timing;
  /** A send-out's ledger counted by status, raw SQL: what each poll cost before the running counts. */
  ledgerCount: Timing;
  /** Every answer was 200 and the figures were the seeded ones. */
  correct: boolean;
}

export interface DashboardOptions {
  runs: number;
  log: (line: string) => void;
}

/**
 * N subscribers over two years (90 % confirmed, 5 % unsubscribed, 3 % pending, 2 % bounced), each with the
 * events the service writes (subscribed, confirmed; complaints from one in 2,000), then 10 send-outs of N
 * deliveries each, one a day (98.5 % sent, 1 % failed, 0.5 % skipped, and unknown one in 10,000: a few
 * crashes' worth; finished at RATE a second), and one send-out of 10 deliveries still sending. Through the
 * running counts' triggers, as the service's own writes go.
 */
export async function seedDashboard(db: Deps['database']['db'], n: number, log: (line: string) => void) {
  log(`dashboard n=${n}: seeding ${n.toLocaleString('en-US')} subscribers`);
  await db.execute(sql`
    insert into subscribers (email, name, status, unsubscribe_token, created_at, updated_at, confirmed_at,
                             unsubscribed_at, bounced_at)
    select 'reader' || i || '@example.org', case when i % 3 = 0 then null else 'Reader ' || i end, s.status,
           md5(i::text) || substr(md5(random()::text), 1, 11), at, at,
           case when s.status <> 'pending' then at + interval '1 hour' end,
           case when s.status = 'unsubscribed' then at + interval '30 days' end,
           case when s.status = 'bounced' then at + interval '10 days' end
    from generate_series(1, ${n}) as i,
         lateral (select now() - make_interval(secs => (${n} - i)::float8 / ${n} * 730 * 86400) as at) t,
         lateral (select (case when i % 100 < 90 then 'confirmed' when i % 100 < 95 then 'unsubscribed'
                               when i % 100 < 98 then 'pending' else 'bounced' end)::subscriber_status
                  as status) s`);
  await db.execute(sql`
    insert into subscriber_events (subscriber_id, kind, at)
    select id, 'subscribed'::subscriber_event_kind, created_at from subscribers
    union all
    select id, 'confirmed', confirmed_at from subscribers where confirmed_at is not null
    union all
    select id, 'unsubscribed', unsubscribed_at from subscribers where unsubscribed_at is not null`);
  await db.execute(sql`
    insert into subscriber_events (subscriber_id, kind, at, source, reason)
    select id, 'bounced', bounced_at, 'smtp', '550 5.1.1 No such user'
    from subscribers where status = 'bounced'`);
  await db.execute(sql`
    insert into subscriber_events (subscriber_id, kind, at, source, essay_id)
    select id, 'complained', unsubscribed_at, 'ses', null from subscribers
    where status = 'unsubscribed' and id % 2000 = 0`);
  for (let k = 1; k <= SENDOUTS; k++) {
    log(`dashboard n=${n}: send-out ${k} of ${SENDOUTS} (${n.toLocaleString('en-US')} deliveries)`);
    const [essay] = await rows<{ id: number }>(
      db,
      sql`insert into essays (slug, title, url, total, published_at)
          values (${`essay-${k}`}, ${`Essay number ${k}`}, ${`https://example.org/essays/${k}`}, ${n},
                  date_trunc('second', now()) - make_interval(days => ${SENDOUTS - k + 1}))
          returning id`,
    );
    // Every subscriber gets a row, whatever their status now: the list was all confirmed when it went out.
    await db.execute(sql`
      insert into deliveries (essay_id, subscriber_id, status, attempts, updated_at, claimed_by, last_error)
      select e.id, x.id, d.status, 1, e.published_at + make_interval(secs => ceil(x.id::float8 / ${RATE})),
             '00000000-0000-4000-8000-000000000000',
             case d.status when 'failed' then '550 5.1.1 No such user'
                           when 'unknown' then 'the dispatcher stopped while SMTP had the message; not resent' end
      from essays e, generate_series(1, ${n}) as x(id),
           lateral (select (case when x.id % 200 = 7 then 'skipped' when x.id % 10000 = 9 then 'unknown'
                                 when x.id % 100 = 3 then 'failed' else 'sent' end)::delivery_status as status) d
      where e.id = ${essay?.id}
      order by x.id`);
  }
  const [live] = await rows<{ id: number }>(
    db,
    sql`insert into essays (slug, title, url, total) values ('ten', 'Ten letters', 'https://example.org/ten', 10)
        returning id`,
  );
  await db.execute(sql`
    insert into deliveries (essay_id, subscriber_id, status, updated_at)
    select ${live?.id}, i, (case when i <= 4 then 'sent' else 'pending' end)::delivery_status,
           case when i <= 4 then now() end
    from generate_series(1, 10) as i`);
  log(`dashboard n=${n}: vacuum analyze`);
  await db.execute(sql`vacuum analyze`);
  await db.execute(sql`checkpoint`);
}

/** Runs each of `works` in turn, `runs` times over (after a few rounds to warm up): the timing of each. */
async function alternate(runs: number, works: (() => Promise<unknown>)[]): Promise<Timing[]> {
  const samples = works.map((): number[] => []);
  for (let round = -5; round < runs; round++) {
    for (const [i, work] of works.entries()) {
      const t = performance.now();
      await work();
      if (round >= 0) samples[i]?.push(performance.now() - t);
    }
  }
  return samples.map(timing);
}

export async function measureDashboard(n: number, options: DashboardOptions): Promise<DashboardResult> {
  const { log, runs } = options;
  const url = await createServerDatabase();
  const database = await openPostgres(url, { poolSize: 4, migrationsFolder: MIGRATIONS_FOLDER });
  const { db } = database;
  try {
    const t = performance.now();
    await seedDashboard(db, n, log);
    const seedSeconds = (performance.now() - t) / 1000;
    const [ledger] = await rows<{ n: number }>(db, sql`select count(*)::int as n from deliveries`);

    const config = parseConfig({
      PUBLIC_URL: 'https://news.example.org',
      PUBLISHER_TOKEN: TOKEN,
      MAIL_FROM: 'Essays <essays@example.org>',
    });
    const deps: Deps = { config, database, renderer: createRenderer(loadTemplates()), log: silentLogger };
    const app = createApp(deps);
    const admin = await signIn({ app }, TOKEN);
    const api = (path: string) => app.request(path, { headers: { authorization: `Bearer ${TOKEN}` } });
    const latest = `essay-${SENDOUTS}`;
    const someone = Math.ceil(n / 2);
    const pages = [
      { what: 'overview', path: '/admin' },
      { what: 'a send-out', path: `/admin/sendouts/${latest}` },
      { what: 'subscribers, first page', path: '/admin/subscribers' },
      { what: 'subscribers, by status', path: '/admin/subscribers?status=bounced' },
      { what: 'subscribers, by address', path: `/admin/subscribers?q=reader${someone}` },
      { what: 'a subscriber', path: `/admin/subscribers/${someone}` },
      { what: 'erasing a subscriber (its confirmation)', path: `/admin/subscribers/${someone}/erase` },
      { what: 'publish (the form, "Send to N")', path: '/admin/publish' },
    ];
    // Each poll at N and at 10 deliveries, taking turns request by request, so that whatever else the
    // machine does weighs on both alike; polls are cheap and the figure to compare, so they run more often.
    const polls = [
      {
        what: 'poll: send-out page',
        at: (slug: string) => `/admin/sendouts/${slug}/progress`,
        get: admin.get,
      },
      { what: 'poll: API', at: (slug: string) => `/api/essays/${slug}`, get: api },
    ];
    let correct = true;
    const ask = async (get: (path: string) => Response | Promise<Response>, path: string) => {
      const res = await get(path);
      const body = await res.text();
      if (res.status !== 200) {
        correct = false;
        throw new Error(`${path} answered ${res.status}: ${body.slice(0, 300)}`);
      }
    };
    const figures: DashboardFigure[] = [];
    for (const page of pages) {
      log(`dashboard n=${n}: ${page.what}`);
      figures.push({ ...page, timing: await repeat(runs, () => ask(admin.get, page.path)) });
    }
    for (const poll of polls) {
      log(`dashboard n=${n}: ${poll.what}, at N and at 10 deliveries`);
      const [atN, atTen] = (await alternate(runs * 5, [
        () => ask(poll.get, poll.at(latest)),
        () => ask(poll.get, poll.at('ten')),
      ])) as [Timing, Timing];
      figures.push({ what: poll.what, path: poll.at(latest), timing: atN });
      figures.push({ what: `${poll.what}, 10 letters`, path: poll.at('ten'), timing: atTen });
    }
    // The figures are the seeded ones: every delivery of the latest send-out finished, as seeded.
    const polled = (await (await api(`/api/essays/${latest}`)).json()) as { sendout: Record<string, number> };
    const expected = (mod: number, at: number) => Math.floor((n - at) / mod) + (at <= n ? 1 : 0);
    const skipped = expected(200, 7);
    const unknown = expected(10_000, 9);
    const failed = expected(100, 3);
    correct &&=
      polled.sendout.total === n &&
      polled.sendout.pending === 0 &&
      polled.sendout.skipped === skipped &&
      polled.sendout.unknown === unknown &&
      polled.sendout.failed === failed &&
      polled.sendout.sent === n - skipped - unknown - failed;

    const [essay] = await rows<{ id: number }>(db, sql`select id from essays where slug = ${latest}`);
    const ledgerCount = await repeat(runs, () =>
      db.execute(sql`select status, count(*) from deliveries where essay_id = ${essay?.id} group by status`),
    );
    const of = (what: string) => figures.find((f) => f.what === what)?.timing as Timing;
    return {
      n,
      deliveries: Number(ledger?.n ?? 0),
      seedSeconds,
      figures,
      pollAtN: of('poll: API'),
      pollAtTen: of('poll: API, 10 letters'),
      ledgerCount,
      correct,
    };
  } finally {
    await database.close();
    await dropServerDatabase(url);
  }
}
