/**
 * Fan-out: publishing an essay to N confirmed subscribers (one INSERT … SELECT into the delivery ledger),
 * against the same statement run raw on the same database in the same run (the baseline).
 * Usage: npm run bench -- [sizes…]   (default 100000 1000000; BENCH_DATABASE_URL or the local server)
 */
import { sql } from 'drizzle-orm';
import { MIGRATIONS_FOLDER } from '../src/db/open.js';
import { openPostgres } from '../src/db/postgres.js';
import { publish } from '../src/essays/service.js';
import { createServerDatabase, dropServerDatabase } from '../tests/support/db.js';

const sizes = process.argv.slice(2).map(Number).filter(Boolean);
if (sizes.length === 0) sizes.push(100_000, 1_000_000);

async function measure(n: number): Promise<void> {
  const url = await createServerDatabase();
  const database = await openPostgres(url, { migrationsFolder: MIGRATIONS_FOLDER });
  const { db } = database;
  try {
    await db.execute(sql`
      insert into subscribers (email, status, unsubscribe_token)
      select 'reader' || i || '@example.org', 'confirmed', md5(i::text) || 'abcdefghijk'
      from generate_series(1, ${n}) as i`);
    await db.execute(sql`vacuum analyze subscribers`);

    const rssBefore = process.memoryUsage().rss;
    let t = performance.now();
    const { essay } = await publish(db, { slug: 'bench', title: 'Bench', url: 'https://example.org/bench' });
    const ours = (performance.now() - t) / 1000;
    const rssAfter = process.memoryUsage().rss;

    // Baseline: the bare statement, into the same table, for another essay.
    await db.execute(
      sql`insert into essays (slug, title, url) values ('raw', 'Raw', 'https://example.org/raw')`,
    );
    t = performance.now();
    await db.execute(sql`
      insert into deliveries (essay_id, subscriber_id)
      select (select id from essays where slug = 'raw'), id from subscribers where status = 'confirmed'`);
    const raw = (performance.now() - t) / 1000;

    const [count] = (await db.execute(
      sql`select count(*)::int as n from deliveries where essay_id = ${essay.id}`,
    )) as unknown as { n: number }[];
    console.log(
      `fan-out n=${n}: publish ${ours.toFixed(2)} s, raw INSERT…SELECT ${raw.toFixed(2)} s, ratio ${(ours / raw).toFixed(2)}; ` +
        `deliveries ${count?.n}; client RSS change ${((rssAfter - rssBefore) / 1048576).toFixed(1)} MiB`,
    );
  } finally {
    await database.close();
    await dropServerDatabase(url);
  }
}

for (const n of sizes) await measure(n);
