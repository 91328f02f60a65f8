import { ConfigError, parseConfig } from '../config.js';
import { MIGRATIONS_FOLDER } from '../db/open.js';
import { migratePostgres } from '../db/postgres.js';
import { describeError } from '../log.js';

/**
 * `npm run db:migrate`: applies the SQL migrations in drizzle/ to DATABASE_URL. `npm start` does this by
 * itself; a Cloudflare Worker can't (no filesystem), so run this from a machine with Node before deploying.
 */
async function main(): Promise<void> {
  const config = parseConfig(process.env);
  if (!config.databaseUrl) {
    throw new ConfigError(
      'Set DATABASE_URL to the PostgreSQL server to migrate (the embedded one migrates at start).',
    );
  }
  await migratePostgres(config.databaseUrl, MIGRATIONS_FOLDER);
  process.stdout.write('The database is up to date.\n');
}

main().catch((error) => {
  process.stderr.write(
    `${error instanceof ConfigError ? error.message : `Migration failed: ${describeError(error).error}`}\n`,
  );
  process.exit(1);
});
