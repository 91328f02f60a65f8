import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { pg_trgm } from '@electric-sql/pglite/contrib/pg_trgm';
import { drizzle } from 'drizzle-orm/pglite';
import { migrate } from 'drizzle-orm/pglite/migrator';
import type { Database, Db } from './client.js';
import { schema } from './client.js';

/** Another process has the embedded database open. */
export class DatabaseLockedError extends Error {
  override name = 'DatabaseLockedError';
}

export interface PgliteOptions {
  /** A folder to keep the data in; in memory when absent. */
  dir?: string;
  migrationsFolder?: string;
  /** A data folder saved with dumpDataDir() to start from instead of an empty one (tests: one migrated copy). */
  loadDataDir?: Blob;
}

/** Opens the embedded PostgreSQL (PGlite), holding a lock file so a second process can't open it too. */
export async function openPglite(options: PgliteOptions = {}): Promise<Database> {
  const release = options.dir ? lockDataDir(options.dir) : () => {};
  let client: PGlite;
  try {
    // pg_trgm: the subscriber list's "address contains" search (migration 0002 creates the extension).
    const settings = { extensions: { pg_trgm }, loadDataDir: options.loadDataDir };
    client = options.dir ? new PGlite(join(options.dir, 'pg'), settings) : new PGlite(settings);
    await client.waitReady;
    const db: Db = drizzle(client, { schema });
    if (options.migrationsFolder)
      await migrate(drizzle(client), { migrationsFolder: options.migrationsFolder });
    return {
      db,
      kind: 'pglite',
      async ping() {
        await client.query('select 1');
      },
      async close() {
        if (client.closed) return;
        try {
          await client.close();
        } finally {
          release();
        }
      },
    };
  } catch (error) {
    release();
    throw error;
  }
}

/**
 * PGlite has no lock of its own: a second process opening the same folder silently loses writes.
 * The lock file holds the owner's pid; a lock left by a process that is gone is taken over.
 */
function lockDataDir(dir: string): () => void {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'oneletter.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => rmSync(path, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const owner = Number.parseInt(readFileSync(path, 'utf8'), 10);
      if (owner && owner !== process.pid && isAlive(owner)) {
        throw new DatabaseLockedError(
          `The embedded database in ${dir} is already open in another process (pid ${owner}). ` +
            'The embedded database serves one process only: stop the other one, or set DATABASE_URL to a ' +
            'PostgreSQL server to run several processes (server, workers, CLI) at once.',
        );
      }
      rmSync(path, { force: true });
    }
  }
  throw new DatabaseLockedError(
    `Could not take the lock file ${path}; another process is starting. Try again.`,
  );
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
