import { fileURLToPath } from 'node:url';
import type { Config } from '../config.js';
import type { Database } from './client.js';
import { openPglite } from './pglite.js';
import { openPostgres } from './postgres.js';

/** The generated SQL migrations shipped with the project. */
export const MIGRATIONS_FOLDER = fileURLToPath(new URL('../../drizzle', import.meta.url));

/** Opens the configured database on Node (PostgreSQL when DATABASE_URL is set, else PGlite) and migrates it. */
export function openDatabase(
  config: Pick<Config, 'databaseUrl' | 'dataDir' | 'dbPoolSize'>,
): Promise<Database> {
  if (config.databaseUrl) {
    return openPostgres(config.databaseUrl, {
      poolSize: config.dbPoolSize,
      migrationsFolder: MIGRATIONS_FOLDER,
    });
  }
  return openPglite({ dir: config.dataDir, migrationsFolder: MIGRATIONS_FOLDER });
}
