import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BounceReport, ReportKind } from '../src/bounces/suppress.js';
import { applyReports } from '../src/bounces/suppress.js';
import { rows } from '../src/db/client.js';
import type { TestDatabase } from './support/db.js';
import { createTestDatabase, testDbKind } from './support/db.js';
import { addresses, seedSubscribers } from './support/sendout.js';

/**
 * Bounce and complaint reports arrive from several providers and the bounce mailbox at once, each event applied
 * in a transaction of its own. On a real server those transactions run side by side: none may fail with a
 * deadlock (40P01), which a provider would see as a 500 and a mailbox as a report left unread.
 */

// PGlite is one connection: its transactions never overlap.
describe.skipIf(testDbKind === 'pglite')('reports applied side by side', () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(async () => {
    await database?.destroy();
  });

  /** A small deterministic generator (mulberry32): a failure names its seed, and the same seed repeats it. */
  function random(seed: number): () => number {
    let a = seed;
    return () => {
      a = (a + 0x6d2b79f5) | 0;
      let t = Math.imul(a ^ (a >>> 15), 1 | a);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  const KINDS: ReportKind[] = ['bounce', 'soft_bounce', 'complaint', 'delivered'];

  it('never deadlock, and the running counts stay exact', async () => {
    const db = database.db;
    for (let round = 0; round < 6; round++) {
      const next = random(round + 1);
      const confirmed = addresses(`side-${round}-c`, 24);
      const pending = addresses(`side-${round}-p`, 8);
      await seedSubscribers(db, 'confirmed', confirmed);
      await seedSubscribers(db, 'pending', pending);
      const everyone = [...confirmed, ...pending];
      // Many events at once, each a handful of reports about addresses the others name too, in any order.
      // Providers retry and overlap: half the events carry an event id, the others (SendGrid's batches) an id
      // per report, both drawn from a small pool, so that transactions record some of the same ids at once.
      const pick = <T>(list: T[]): T => list[Math.floor(next() * list.length)] as T;
      const events = Array.from({ length: 40 }, (_, n) => {
        const perReport = n % 2 === 1;
        const reports = Array.from(
          { length: 2 + Math.floor(next() * 6) },
          (): BounceReport => ({
            email: pick(everyone),
            kind: pick(KINDS),
            reason: 'side by side',
            eventId: perReport ? `report-${round}-${Math.floor(next() * 60)}` : undefined,
          }),
        );
        return {
          source: perReport ? ('sendgrid' as const) : ('webhook' as const),
          eventIds: perReport ? [] : [`event-${round}-${Math.floor(next() * 30)}`],
          reports,
        };
      });
      const results = await Promise.allSettled(
        events.map((event) => applyReports(db, { ...event, softBounceLimit: 2 })),
      );
      // drizzle wraps the server's error ("Failed query: …"): its code and message are the cause's.
      const failures = results.flatMap((r) => {
        if (r.status === 'fulfilled') return [];
        const error = (r.reason as { cause?: unknown }).cause ?? r.reason;
        const { code, detail } = error as { code?: string; detail?: string };
        return [`${code}: ${(error as Error).message}${detail ? ` (${detail})` : ''}`];
      });
      expect(failures, `round ${round}`).toEqual([]);
    }
    const counted = await rows<{ status: string; n: number }>(
      db,
      sql`select status::text as status, sum(count)::int as n from subscriber_counts group by 1 having sum(count) <> 0 order by 1`,
    );
    const actual = await rows<{ status: string; n: number }>(
      db,
      sql`select status::text as status, count(*)::int as n from subscribers group by 1 order by 1`,
    );
    expect(counted).toEqual(actual);
  });
});
