/**
 * The versions of the service a benchmark measures: this working tree, and with `--compare=<git ref>` that
 * ref checked out beside it (a detached git worktree in a temporary folder, this tree's node_modules linked
 * in, built as `npm run build` builds it), so both are measured side by side in one run.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import type { Database } from '../src/db/client.js';
import { createServerDatabase, dropServerDatabase } from '../tests/support/db.js';
import { buildService, ROOT } from './support.js';

/** One version of the service: where it lives, and what the benchmark calls in process, as it has them. */
export interface ServiceVersion {
  /** How the tables name it: `working tree`, or the ref. */
  label: string;
  /** Its checkout: `npm run worker` runs from here (its package.json, its dist/). */
  root: string;
  /** A new database on the local PostgreSQL server, migrated by this version; `destroy()` drops it. */
  freshDatabase(): Promise<FreshDatabase>;
  /** Records an essay and fans its send-out out, as this version does. */
  publish: typeof import('../src/essays/service.js')['publish'];
}

export interface FreshDatabase extends Database {
  url: string;
  /** Closes it and drops it. */
  destroy(): Promise<void>;
}

const git = (args: string[]) =>
  promisify(execFile)('git', args, { cwd: ROOT }).then(({ stdout }) => stdout.trim());

/** A version's modules from its own sources (tsx compiles them: the benchmark runs under it). */
async function load(label: string, root: string): Promise<ServiceVersion> {
  const from = async <T>(path: string) => (await import(pathToFileURL(join(root, path)).href)) as T;
  const [postgres, open, essays] = await Promise.all([
    from<typeof import('../src/db/postgres.js')>('src/db/postgres.ts'),
    from<typeof import('../src/db/open.js')>('src/db/open.ts'),
    from<typeof import('../src/essays/service.js')>('src/essays/service.ts'),
  ]);
  return {
    label,
    root,
    async freshDatabase() {
      const url = await createServerDatabase();
      const database = await postgres
        .openPostgres(url, { poolSize: 2, migrationsFolder: open.MIGRATIONS_FOLDER })
        .catch(async (error) => {
          await dropServerDatabase(url);
          throw error;
        });
      return {
        ...database,
        url,
        async destroy() {
          await database.close();
          await dropServerDatabase(url);
        },
      };
    },
    publish: essays.publish,
  };
}

/** This working tree, built. */
export async function workingTree(): Promise<ServiceVersion> {
  await buildService(ROOT);
  return load('working tree', ROOT);
}

/**
 * `ref` checked out in a temporary worktree and built. Call `remove()` when done, also after a failure:
 * it takes the worktree away again.
 */
export async function checkout(ref: string): Promise<ServiceVersion & { remove(): Promise<void> }> {
  const commit = await git(['rev-parse', '--short', `${ref}^{commit}`]).catch(() => {
    throw new Error(`--compare=${ref}: no such commit in this repository`);
  });
  const dir = await mkdtemp(join(tmpdir(), 'oneletter-bench-'));
  const remove = async () => {
    await git(['worktree', 'remove', '--force', dir]).catch(() => {});
    await rm(dir, { recursive: true, force: true });
    await git(['worktree', 'prune']).catch(() => {});
  };
  try {
    await git(['worktree', 'add', '--detach', dir, commit]);
    await symlink(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
    await buildService(dir);
    const version = await load(
      ref.startsWith(commit) || commit.startsWith(ref) ? ref : `${ref} (${commit})`,
      dir,
    );
    return { ...version, remove };
  } catch (error) {
    await remove();
    throw error;
  }
}
