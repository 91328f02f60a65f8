import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../src/db/client.js';
import { DatabaseLockedError, openPglite } from '../src/db/pglite.js';
import { testDbKind } from './support/db.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CHILD = join(ROOT, 'tests/support/pglite-child.ts');

interface ChildResult {
  opened?: boolean;
  pid?: number;
  error?: string;
  message?: string;
}

const children = new Set<ChildProcess>();

function startChild(dir: string, mode: 'try' | 'hold') {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, dir, mode], {
    cwd: ROOT,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const result = new Promise<ChildResult>((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      const line = stdout.split('\n')[0];
      if (stdout.includes('\n') && line) resolve(JSON.parse(line) as ChildResult);
    });
    child.on('exit', (code, signal) =>
      reject(new Error(`child exited (${code ?? signal}) without an answer: ${stdout}${stderr}`)),
    );
  });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  exited.then(() => children.delete(child));
  return { child, result, exited };
}

/** Opens the folder in another process and reports what happened. */
async function openInAnotherProcess(dir: string): Promise<ChildResult> {
  const { result, exited } = startChild(dir, 'try');
  const answer = await result;
  await exited;
  return answer;
}

/** The pid of a process that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  await new Promise((resolve) => child.on('exit', resolve));
  if (!child.pid) throw new Error('no pid');
  return child.pid;
}

describe.skipIf(testDbKind === 'postgres')('the embedded database is opened by one process at a time', () => {
  let root: string;
  let open: Database | undefined;
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'oneletter-lock-'));
  });
  afterEach(async () => {
    await open?.close();
    open = undefined;
    for (const child of children) child.kill('SIGKILL');
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('a second process is refused with a message pointing to DATABASE_URL, and gets in once the first closes', async () => {
    const dir = join(root, 'shared');
    open = await openPglite({ dir });
    expect(readFileSync(join(dir, 'oneletter.lock'), 'utf8')).toBe(String(process.pid));

    const refused = await openInAnotherProcess(dir);
    expect(refused.opened).toBeUndefined();
    expect(refused.error).toBe('DatabaseLockedError');
    expect(refused.message).toContain('DATABASE_URL');
    expect(refused.message).toContain(`pid ${process.pid}`);
    expect(refused.message).toContain(dir);

    // The refusal left the first process's lock alone.
    expect(readFileSync(join(dir, 'oneletter.lock'), 'utf8')).toBe(String(process.pid));
    await open.ping();

    await open.close();
    open = undefined;
    expect(existsSync(join(dir, 'oneletter.lock'))).toBe(false);
    expect(await openInAnotherProcess(dir)).toMatchObject({ opened: true });
  });

  it('this process is refused while another process holds the folder', async () => {
    const dir = join(root, 'held');
    const holder = startChild(dir, 'hold');
    const held = await holder.result;
    expect(held).toMatchObject({ opened: true });

    const error = await openPglite({ dir }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DatabaseLockedError);
    expect((error as Error).message).toContain('DATABASE_URL');
    expect((error as Error).message).toContain(`pid ${held.pid}`);

    holder.child.stdin?.end();
    await holder.exited;
    open = await openPglite({ dir });
    await open.ping();
  });

  it('a lock left by a process that was killed is taken over', async () => {
    const dir = join(root, 'killed');
    const holder = startChild(dir, 'hold');
    expect(await holder.result).toMatchObject({ opened: true });
    holder.child.kill('SIGKILL');
    await holder.exited;
    expect(existsSync(join(dir, 'oneletter.lock'))).toBe(true);

    open = await openPglite({ dir });
    await open.ping();
    expect(readFileSync(join(dir, 'oneletter.lock'), 'utf8')).toBe(String(process.pid));
  });

  it('a stale lock file with a dead pid, or with garbage in it, is taken over', async () => {
    const dir = join(root, 'stale');
    open = await openPglite({ dir });
    await open.close();
    open = undefined;

    writeFileSync(join(dir, 'oneletter.lock'), String(await deadPid()));
    open = await openPglite({ dir });
    await open.ping();
    await open.close();
    open = undefined;

    writeFileSync(join(dir, 'oneletter.lock'), 'not a pid');
    expect(await openInAnotherProcess(dir)).toMatchObject({ opened: true });
    expect(existsSync(join(dir, 'oneletter.lock'))).toBe(false);
  });
});
