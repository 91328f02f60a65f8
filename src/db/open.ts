import { fileURLToPath } from 'node:url';
import type { Config } from '../config.js';
import type { Database } from './client.js';

/** The generated SQL migrations shipped with the project. */
export const MIGRATIONS_FOLDER = fileURLToPath(new URL('../../drizzle', import.meta.url));

/**
 * Opens the configured database on Node (PostgreSQL when DATABASE_URL is set, else PGlite) and migrates it.
 * Only the driver in use is loaded (PGlite's module alone is several MiB of memory).
 */
export async function openDatabase(
  config: Pick<Config, 'databaseUrl' | 'dataDir' | 'dbPoolSize'>,
): Promise<Database> {
  if (config.databaseUrl) {
    const { openPostgres } = await import('./postgres.js');
    return openPostgres(config.databaseUrl, {
      poolSize: config.dbPoolSize,
      migrationsFolder: MIGRATIONS_FOLDER,
    });
  }
  const { openPglite } = await import('./pglite.js');
  return openPglite({ dir: config.dataDir, migrationsFolder: MIGRATIONS_FOLDER });
}
