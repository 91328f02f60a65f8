import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { Config } from '../config.js';
import { openPostgres } from '../db/postgres.js';
import { describeError } from '../log.js';
import type { Check } from './check.js';

/**
 * PostgreSQL: connects and runs `select 1` (no migrations: the doctor changes nothing). The embedded
 * PGlite is not opened (a running service holds it): its folder must exist and be writable, or be creatable.
 */
export async function checkDatabase(config: Pick<Config, 'databaseUrl' | 'dataDir'>): Promise<Check> {
  const name = 'database';
  if (config.databaseUrl) {
    const url = new URL(config.databaseUrl);
    const shown = `${url.hostname}:${url.port || 5432}${url.pathname}`;
    try {
      const database = await openPostgres(config.databaseUrl, { poolSize: 1 });
      try {
        await database.ping();
      } finally {
        await database.close();
      }
      return { name, verdict: 'ok', detail: `PostgreSQL at ${shown} answers` };
    } catch (error) {
      return {
        name,
        verdict: 'fail',
        detail: `PostgreSQL at ${shown} does not answer (${describeError(error).error})`,
        fix: 'check DATABASE_URL (host, port, user, password, database) and that the server is up',
      };
    }
  }
  const dir = resolve(config.dataDir);
  const exists = await isThere(join(dir, 'pg'));
  // The nearest folder that exists is where the embedded database will be created.
  let writable = dir;
  while (!(await isThere(writable)) && dirname(writable) !== writable) writable = dirname(writable);
  try {
    await access(writable, constants.W_OK);
  } catch {
    return {
      name,
      verdict: 'fail',
      detail: `embedded PGlite: ${writable} is not writable by this user`,
      fix: `give this user write access to ${writable}, or set DATA_DIR (or DATABASE_URL)`,
    };
  }
  if (!exists) {
    return { name, verdict: 'ok', detail: `embedded PGlite: created in ${dir} at first start` };
  }
  return {
    name,
    verdict: 'ok',
    detail: `embedded PGlite in ${dir} (found; not opened here, as a running service may hold it)`,
  };
}

function isThere(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
