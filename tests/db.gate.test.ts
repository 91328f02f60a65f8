import { sql } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { rows } from '../src/db/client.js';
import { MIGRATIONS_FOLDER } from '../src/db/open.js';
import { createGate, openPostgres } from '../src/db/postgres.js';
import { createServerDatabase, dropServerDatabase, testDbKind } from './support/db.js';

// src/db/postgres.ts hands postgres.js at most as many queries at once as it has connections: beyond
// that, postgres.js's own queues made every query dearer than the one before under steady load.
describe('the gate in front of postgres.js', () => {
  it('lets at most its limit in at once, and the rest in the order they came', () => {
    const gate = createGate(2);
    const started: number[] = [];
    for (let i = 0; i < 5; i++) gate.enter(() => started.push(i));
    expect(started).toEqual([0, 1]);
    gate.leave();
    expect(started).toEqual([0, 1, 2]);
    gate.leave();
    gate.leave();
    expect(started).toEqual([0, 1, 2, 3, 4]);
    // Everyone left: the next one goes straight in, and so does one more, up to the limit again.
    gate.leave();
    gate.leave();
    gate.enter(() => started.push(5));
    gate.enter(() => started.push(6));
    gate.enter(() => started.push(7));
    expect(started).toEqual([0, 1, 2, 3, 4, 5, 6]);
  });

  it('keeps order across thousands of waiters, whose slots it drops as it goes', () => {
    const gate = createGate(1);
    const started: number[] = [];
    for (let i = 0; i < 5000; i++) gate.enter(() => started.push(i));
    for (let i = 0; i < 5000; i++) gate.leave();
    expect(started).toEqual(Array.from({ length: 5000 }, (_, i) => i));
  });

  it.runIf(testDbKind === 'postgres')(
    'runs many more queries than connections at once, each once with its own answer, and a failure frees its place',
    async () => {
      const url = await createServerDatabase();
      const database = await openPostgres(url, { poolSize: 3, migrationsFolder: MIGRATIONS_FOLDER });
      try {
        const answers = await Promise.all(
          Array.from({ length: 200 }, (_, i) => rows<{ n: number }>(database.db, sql`select ${i}::int as n`)),
        );
        expect(answers.map(([a]) => a?.n)).toEqual(Array.from({ length: 200 }, (_, i) => i));
        // A failing query lets the next one in too.
        await expect(rows(database.db, sql`select 1 / 0`)).rejects.toThrow();
        expect(await rows(database.db, sql`select 1 as one`)).toEqual([{ one: 1 }]);
      } finally {
        await database.close();
        await dropServerDatabase(url);
      }
    },
  );
});
