import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import postgres from 'postgres';
import type { Database } from '../../src/db/client.js';
import { MIGRATIONS_FOLDER } from '../../src/db/open.js';
import { openPglite } from '../../src/db/pglite.js';
import { openPostgres } from '../../src/db/postgres.js';

export type TestDbKind = 'pglite' | 'postgres';

/** Which database this test run uses (vitest's project sets TEST_DB). */
export const testDbKind: TestDbKind = process.env.TEST_DB === 'postgres' ? 'postgres' : 'pglite';

/** The server the postgres run uses; each test file gets its own database on it. */
export const adminUrl = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/**
 * Set by the global setup (tests/support/template.ts): a migrated PGlite data folder saved as a tarball, and a
 * migrated database on the PostgreSQL server, that each test file's database is copied from.
 */
export const PGLITE_TEMPLATE_ENV = 'ONELETTER_TEST_PGLITE_TEMPLATE';
export const POSTGRES_TEMPLATE_ENV = 'ONELETTER_TEST_POSTGRES_TEMPLATE';

export interface TestDatabase extends Database {
  /** For a real server: the URL of this test's own database (for child processes). */
  url?: string;
  /** Closes and, on a real server, drops the database. */
  destroy(): Promise<void>;
}

/** A fresh, migrated database of this run's kind. */
export async function createTestDatabase(kind: TestDbKind = testDbKind): Promise<TestDatabase> {
  if (kind === 'pglite') {
    const template = process.env[PGLITE_TEMPLATE_ENV];
    const database = await openPglite({
      migrationsFolder: MIGRATIONS_FOLDER,
      loadDataDir: template ? new Blob([readFileSync(template)]) : undefined,
    });
    return { ...database, destroy: () => database.close() };
  }
  const url = await createServerDatabase(process.env[POSTGRES_TEMPLATE_ENV]);
  const database = await openPostgres(url, { poolSize: 10, migrationsFolder: MIGRATIONS_FOLDER });
  return {
    ...database,
    url,
    async destroy() {
      await database.close();
      await dropServerDatabase(url);
    },
  };
}

/** Creates a database on the test server, empty or a copy of `template`, and returns its URL. */
export async function createServerDatabase(template?: string): Promise<string> {
  const name = `oneletter_test_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`create database ${name}${template ? ` template ${template}` : ''}`);
  } finally {
    await admin.end({ timeout: 5 });
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.href;
}

export async function dropServerDatabase(url: string): Promise<void> {
  const name = new URL(url).pathname.slice(1);
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`drop database if exists ${name} with (force)`);
  } finally {
    await admin.end({ timeout: 5 });
  }
}
