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
  const db: Db = drizzle(preparing(client), { schema });
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
 */
function preparing(client: postgres.Sql): postgres.Sql {
  return new Proxy(client, {
    get(target, key, receiver) {
      if (key !== 'unsafe') return Reflect.get(target, key, receiver);
      return (query: string, params?: unknown[], options?: { prepare?: boolean }) =>
        target.unsafe(query, params as postgres.ParameterOrJSON<never>[], { ...options, prepare: true });
    },
  });
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
