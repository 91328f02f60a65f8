import { sql } from 'drizzle-orm';
import postgres from 'postgres';
import { afterEach, describe, expect, it } from 'vitest';
import type { Database } from '../src/db/client.js';
import { rows } from '../src/db/client.js';
import { MIGRATIONS_FOLDER } from '../src/db/open.js';
import { createLanes, openPostgres } from '../src/db/postgres.js';
import { createServerDatabase, dropServerDatabase, testDbKind } from './support/db.js';

// src/db/postgres.ts spreads queries over single-connection postgres.js clients (lanes), pipelined on
// each, passing over a lane that holds a transaction or is busy with a long statement.
describe.runIf(testDbKind === 'postgres')('queries spread over the connections', () => {
  let open: { database: Database; url: string } | undefined;
  afterEach(async () => {
    if (!open) return;
    await open.database.close();
    await dropServerDatabase(open.url);
    open = undefined;
  });

  async function pool(poolSize: number): Promise<Database> {
    const url = await createServerDatabase();
    const database = await openPostgres(url, { poolSize, migrationsFolder: MIGRATIONS_FOLDER });
    open = { database, url };
    return database;
  }

  it('runs many more queries than connections at once, each once with its own answer, and a failure holds nothing up', async () => {
    const database = await pool(3);
    const answers = await Promise.all(
      Array.from({ length: 200 }, (_, i) => rows<{ n: number }>(database.db, sql`select ${i}::int as n`)),
    );
    expect(answers.map(([a]) => a?.n)).toEqual(Array.from({ length: 200 }, (_, i) => i));
    // A failing query among others: it fails alone, and the lane goes on.
    const mixed = await Promise.allSettled([
      rows(database.db, sql`select 1 as one`),
      rows(database.db, sql`select 1 / 0`),
      rows(database.db, sql`select 2 as two`),
      rows(database.db, sql`select 3 as three`),
    ]);
    expect(mixed.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
    expect(await rows(database.db, sql`select 1 as one`)).toEqual([{ one: 1 }]);
  });

  it('does not queue a short query behind a long statement while another connection is free', async () => {
    const database = await pool(2);
    let longDone = false;
    const long = rows(database.db, sql`select pg_sleep(2)`).then(() => {
      longDone = true;
    });
    // Long enough for the lane to have answered nothing for a while.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const quick = await Promise.all(
      Array.from({ length: 20 }, (_, i) => rows<{ n: number }>(database.db, sql`select ${i}::int as n`)),
    );
    expect(longDone).toBe(false);
    expect(quick.map(([a]) => a?.n)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    await long;
  });

  it('does not queue queries behind an open transaction while another connection is free', async () => {
    const database = await pool(2);
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const transaction = database.db.transaction(async (tx) => {
      await tx.execute(sql`select 1`);
      await held;
    });
    const quick = await Promise.all(
      Array.from({ length: 20 }, (_, i) => rows<{ n: number }>(database.db, sql`select ${i}::int as n`)),
    );
    expect(quick.map(([a]) => a?.n)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    release();
    await transaction;
  });

  // A lane's unanswered queries are counted from the queries' own promises, as drizzle awaits them (plain, or
  // after `.values()`): a lane whose answers went uncounted would look busy for good.
  it('counts every query answered, awaited plain or after .values(), failed or not', async () => {
    const url = await createServerDatabase();
    const clients = [1, 2, 3].map(() => postgres(url, { max: 1, onnotice: () => {} }));
    const lanes = createLanes(clients) as unknown as postgres.Sql & { inFlight(): number };
    try {
      const answers = Array.from({ length: 12 }, (_, i) =>
        lanes.unsafe('select $1::int as n', [i]).then((r) => r),
      );
      await new Promise((resolve) => setImmediate(resolve));
      expect(lanes.inFlight()).toBe(12);
      expect((await Promise.all(answers)).map(([row]) => row?.n)).toEqual(
        Array.from({ length: 12 }, (_, i) => i),
      );
      expect(lanes.inFlight()).toBe(0);
      await lanes.unsafe('select 1 / 0').then(
        () => {},
        () => {},
      );
      expect(lanes.inFlight()).toBe(0);
    } finally {
      await Promise.all(clients.map((c) => c.end()));
      await dropServerDatabase(url);
    }
  });

  it('reads values the same way on every connection (as drizzle set them up)', async () => {
    const database = await pool(3);
    // drizzle has postgres.js hand timestamps over as text; a lane without its settings would give Dates.
    const answers = await Promise.all(
      Array.from({ length: 30 }, () => rows<{ at: unknown }>(database.db, sql`select now() as at`)),
    );
    for (const [answer] of answers) expect(typeof answer?.at).toBe('string');
  });
});
