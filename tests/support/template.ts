/**
 * vitest's globalSetup: migrates one database per run, and every test file's database starts as a copy of it
 * (tests/support/db.ts). Migrating a fresh PGlite costs its initdb (seconds of CPU); copying a saved data
 * folder costs a fraction, and on PostgreSQL `CREATE DATABASE … TEMPLATE` copies files instead of replaying
 * the migrations. The tests still run the migrator on each copy (it finds nothing to do), as the service does.
 */
import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { pg_trgm } from '@electric-sql/pglite/contrib/pg_trgm';
import { drizzle } from 'drizzle-orm/pglite';
import { migrate } from 'drizzle-orm/pglite/migrator';
import type { TestProject } from 'vitest/node';
import { MIGRATIONS_FOLDER } from '../../src/db/open.js';
import { openPostgres } from '../../src/db/postgres.js';
import {
  createServerDatabase,
  dropServerDatabase,
  PGLITE_TEMPLATE_ENV,
  POSTGRES_TEMPLATE_ENV,
} from './db.js';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const kind = project.config.env.TEST_DB;
  // The fast and the slow project of one database share the copy when they run together (`vitest run`).
  const made = process.env[kind === 'postgres' ? POSTGRES_TEMPLATE_ENV : PGLITE_TEMPLATE_ENV];
  if (made) return async () => {};
  if (kind === 'postgres') {
    const url = await createServerDatabase();
    const database = await openPostgres(url, { poolSize: 1, migrationsFolder: MIGRATIONS_FOLDER });
    await database.close();
    // The workers are started after the global setup, with this process's environment.
    process.env[POSTGRES_TEMPLATE_ENV] = new URL(url).pathname.slice(1);
    return () => dropServerDatabase(url);
  }
  const suffix = `${process.pid}_${randomBytes(4).toString('hex')}`;
  const file = join(tmpdir(), `oneletter-pglite-template-${suffix}.tar`);
  // The extensions openPglite loads (src/db/pglite.ts): a data folder is loaded with the same ones.
  const client = new PGlite({ extensions: { pg_trgm } });
  try {
    await migrate(drizzle(client), { migrationsFolder: MIGRATIONS_FOLDER });
    const dump = await client.dumpDataDir('none');
    writeFileSync(file, Buffer.from(await dump.arrayBuffer()));
  } finally {
    await client.close();
  }
  process.env[PGLITE_TEMPLATE_ENV] = file;
  return async () => rmSync(file, { force: true });
}
