/**
 * Subscribe timing by address state: POST /subscribe for a new address (the baseline) against addresses that are
 * pending, confirmed or unsubscribed, measured in the same run, interleaved, on the in-memory app. The request
 * path is meant to be the same for all four (no address enumeration by timing): the ratios should stay near 1.
 * Usage: npx tsx bench/subscribe-timing.ts [samples per state, default 400]
 * Runs on PGlite, and on PostgreSQL when TEST_DATABASE_URL (or postgres://postgres@127.0.0.1:5432/test) answers.
 */
import { sql } from 'drizzle-orm';
import { createApp } from '../src/app.js';
import { parseConfig } from '../src/config.js';
import type { Database } from '../src/db/client.js';
import { MIGRATIONS_FOLDER } from '../src/db/open.js';
import { openPglite } from '../src/db/pglite.js';
import { openPostgres } from '../src/db/postgres.js';
import { silentLogger } from '../src/log.js';
import { createRenderer } from '../src/mail/render.js';
import { loadTemplates } from '../src/mail/templates-fs.js';
import { adminUrl, createServerDatabase, dropServerDatabase } from '../tests/support/db.js';

const samples = Number(process.argv[2]) || 400;
const WARMUP = 100;
const STATES = ['new', 'pending', 'confirmed', 'unsubscribed'] as const;
type State = (typeof STATES)[number];

/** Known addresses per state, made up front; requests cycle through them (their state does not change). */
const KNOWN_PER_STATE = 200;

async function seed(database: Database): Promise<void> {
  for (const status of ['pending', 'confirmed', 'unsubscribed'] as const) {
    await database.db.execute(sql`
      insert into subscribers (email, status, unsubscribe_token)
      select ${status} || i || '@bench.example', ${status}::subscriber_status,
             md5(${status} || i) || md5(random()::text)
      from generate_series(1, ${KNOWN_PER_STATE}) as i`);
  }
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

async function measure(label: string, database: Database): Promise<void> {
  const config = parseConfig({
    PUBLIC_URL: 'https://news.example.test',
    PUBLISHER_TOKEN: 'bench-publisher-token-0123456789',
    MAIL_FROM: 'Essays <essays@example.test>',
    // The limits stay on (their counter is part of every request) but never refuse a sample.
    SUBSCRIBE_LIMIT_PER_IP: '1000000',
    SUBSCRIBE_LIMIT_PER_ADDRESS: '1000000',
  });
  const app = createApp({ config, database, renderer: createRenderer(loadTemplates()), log: silentLogger });
  await seed(database);

  let fresh = 0;
  const address = (state: State, i: number) =>
    state === 'new' ? `new${fresh++}@bench.example` : `${state}${(i % KNOWN_PER_STATE) + 1}@bench.example`;
  const once = async (state: State, i: number): Promise<number> => {
    const body = JSON.stringify({ email: address(state, i) });
    const started = performance.now();
    const res = await app.request('/subscribe', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    });
    await res.arrayBuffer();
    const ms = performance.now() - started;
    if (res.status !== 202) throw new Error(`${state}: expected 202, got ${res.status}`);
    return ms;
  };

  for (let i = 0; i < WARMUP; i++) await once(STATES[i % STATES.length] ?? 'new', i);
  const times: Record<State, number[]> = { new: [], pending: [], confirmed: [], unsubscribed: [] };
  for (let i = 0; i < samples; i++) {
    // Interleaved, in a rotating order, so drift (a growing table, a GC) falls on every state alike.
    for (let k = 0; k < STATES.length; k++) {
      const state = STATES[(i + k) % STATES.length] ?? 'new';
      times[state].push(await once(state, i));
    }
  }

  const stats = Object.fromEntries(
    STATES.map((state) => {
      const sorted = [...times[state]].sort((a, b) => a - b);
      return [state, { median: quantile(sorted, 0.5), p99: quantile(sorted, 0.99) }];
    }),
  ) as Record<State, { median: number; p99: number }>;
  console.log(`\nPOST /subscribe on ${label}, ${samples} requests per state (baseline: a new address)`);
  console.log('state          median ms   p99 ms   median ratio   p99 ratio');
  for (const state of STATES) {
    const { median, p99 } = stats[state];
    console.log(
      `${state.padEnd(14)} ${median.toFixed(3).padStart(9)} ${p99.toFixed(3).padStart(8)} ` +
        `${(median / stats.new.median).toFixed(2).padStart(14)} ${(p99 / stats.new.p99).toFixed(2).padStart(11)}`,
    );
  }
}

const pglite = await openPglite({ migrationsFolder: MIGRATIONS_FOLDER });
try {
  await measure('PGlite (in memory)', pglite);
} finally {
  await pglite.close();
}

let url: string | undefined;
try {
  url = await createServerDatabase();
} catch (error) {
  console.log(`\nPostgreSQL: skipped, no server at ${adminUrl.replace(/\/\/[^@/]*@/, '//***@')} (${error}).`);
}
if (url) {
  const database = await openPostgres(url, { migrationsFolder: MIGRATIONS_FOLDER });
  try {
    await measure('PostgreSQL', database);
  } finally {
    await database.close();
    await dropServerDatabase(url);
  }
}
