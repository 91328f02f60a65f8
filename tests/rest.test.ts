import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { testDbKind } from './support/db.js';

/** Issue 23: memory a burst of work left behind is given back at rest (RSS at rest after a send-out). */

const MiB = 1024 * 1024;

async function rest(
  mode: 'trim' | 'leave',
): Promise<{ afterWork: number; atRest: number; rssAfterWork: number; rssAtRest: number }> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--expose-gc', '--import', 'tsx', 'tests/support/rest-child.ts', mode],
    { cwd: new URL('..', import.meta.url).pathname },
  );
  return JSON.parse(stdout);
}

// No database in it: one project runs it (it starts two node processes of 12 s each).
describe.runIf(testDbKind === 'postgres').concurrent('memory at rest', () => {
  it("gives back V8's young generation within seconds of the work's end", async () => {
    const trimmed = await rest('trim');
    expect(trimmed.afterWork).toBeGreaterThanOrEqual(16 * MiB);
    expect(trimmed.atRest).toBeLessThanOrEqual(2 * MiB);
    // And the process's memory with it: on Node 22 and later, V8 keeps the pages of a shrunk young generation
    // until a memory-reducing collection.
    expect(trimmed.rssAtRest).toBeLessThanOrEqual(trimmed.rssAfterWork - 16 * MiB);
  });

  it('is needed: left alone, V8 keeps the young generation the work grew', async () => {
    const left = await rest('leave');
    expect(left.afterWork).toBeGreaterThanOrEqual(16 * MiB);
    expect(left.atRest).toBe(left.afterWork);
  });

  it('runs in the service and in the worker: both start node with --expose-gc', () => {
    const { scripts } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
    expect(scripts.start).toMatch(/^node --expose-gc /);
    expect(scripts.worker).toMatch(/^node --expose-gc /);
  });
});
