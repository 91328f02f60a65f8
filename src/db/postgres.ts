import { drizzle } from 'drizzle-orm/postgres-js';
import { migrate } from 'drizzle-orm/postgres-js/migrator';
import postgres from 'postgres';
import type { Database, Db } from './client.js';
import { schema } from './client.js';

/** Any number that is ours alone: serialises migrations when several processes start at once. */
const MIGRATION_LOCK = 7_261_001;

export interface PostgresOptions {
  poolSize?: number;
  /** Where the generated SQL migrations are; when given, they are applied before the database is returned. */
  migrationsFolder?: string;
}

/** Opens a PostgreSQL server through postgres.js (pooled). */
export async function openPostgres(url: string, options: PostgresOptions = {}): Promise<Database> {
  if (options.migrationsFolder) await migratePostgres(url, options.migrationsFolder);
  const client = postgres(url, {
    max: options.poolSize ?? 10,
    onnotice: () => {},
    connect_timeout: 10,
    idle_timeout: 60,
  });
  const db: Db = drizzle(preparing(client, createGate(options.poolSize ?? 10)), { schema });
  return {
    db,
    kind: 'postgres',
    async ping() {
      await client`select 1`;
    },
    // postgres.js listens on a connection of its own, outside the pool, and listens again after a reconnect.
    async listen(channel, onNotify) {
      const { unlisten } = await client.listen(channel, () => onNotify());
      return unlisten;
    },
    async close() {
      await client.end({ timeout: 5 });
    },
  };
}

/**
 * drizzle runs `db.execute(sql…)` unprepared, and postgres.js then asks the server to describe every
 * parameterized statement before running it: two round trips each. Prepared (once per connection and
 * statement text), the hot paths take one. Our statements have fixed texts (lists go in as JSON), so the
 * per-connection cache stays small.
 *
 * Every such query also passes the gate: postgres.js gets at most as many at once as it has connections.
 * With more, it queues them on busy connections, and its queues keep a slot for every query since they were
 * last empty, searched from the start on every move: under steady load above the pool's size, each query
 * cost more than the one before (measured: 31 → 116 µs of CPU per query, 32,000 → 8,700 queries/s, over
 * 18 s). Through the gate it stays flat (~24 µs, ~35,000/s). Transactions run on their own reserved
 * connection, outside the gate.
 */
function preparing(client: postgres.Sql, gate: Gate): postgres.Sql {
  return new Proxy(client, {
    get(target, key, receiver) {
      if (key !== 'unsafe') return Reflect.get(target, key, receiver);
      return (query: string, params?: unknown[], options?: { prepare?: boolean }) => {
        const pending = target.unsafe(query, params as postgres.ParameterOrJSON<never>[], {
          ...options,
          prepare: true,
        });
        // postgres.js sends a query when it is first awaited, through its handler: the gate goes in there.
        const handled = pending as unknown as { handler: (q: Promise<unknown>) => void };
        const send = handled.handler;
        handled.handler = (q) =>
          gate.enter(() => {
            q.then(gate.leave, gate.leave);
            send(q);
          });
        return pending;
      };
    },
  });
}

interface Gate {
  /** Runs `start` now if fewer than the limit are in, else when one leaves, in order. */
  enter(start: () => void): void;
  leave(): void;
}

/** Lets at most `limit` in at once; the rest wait in order (an array read from a moving head). */
export function createGate(limit: number): Gate {
  let inside = 0;
  let waiting: (() => void)[] = [];
  let head = 0;
  return {
    enter(start) {
      if (inside < limit) {
        inside++;
        start();
      } else {
        waiting.push(start);
      }
    },
    leave() {
      const next = waiting[head];
      if (!next) {
        inside--;
        return;
      }
      waiting[head++] = undefined as unknown as () => void;
      // Drop the slots already read once they are half the array: it never grows with the traffic.
      if (head === waiting.length || (head > 1024 && head * 2 > waiting.length)) {
        waiting = waiting.slice(head);
        head = 0;
      }
      next();
    },
  };
}

/** Applies the migrations once, even when several processes start together (an advisory lock serialises them). */
export async function migratePostgres(url: string, migrationsFolder: string): Promise<void> {
  const client = postgres(url, { max: 1, onnotice: () => {}, connect_timeout: 10 });
  try {
    await client`select pg_advisory_lock(${MIGRATION_LOCK})`;
    await migrate(drizzle(client), { migrationsFolder });
  } finally {
    await client.end({ timeout: 5 });
  }
}
