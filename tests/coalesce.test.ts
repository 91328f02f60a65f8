import { describe, expect, it } from 'vitest';
import type { Db } from '../src/db/client.js';
import { coalesced } from '../src/db/coalesce.js';

/** A database stands here only as the key of a queue: nothing is run on it. */
const aDb = () => ({}) as Db;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A statement that takes 5 ms (300 ms for an input of 1000), records each batch it was given, and fails on
 * an input of -1.
 */
function statement() {
  const batches: number[][] = [];
  const run = coalesced(async (_db: Db, inputs: number[]) => {
    batches.push([...inputs]);
    await sleep(inputs.includes(1000) ? 300 : 5);
    if (inputs.includes(-1)) throw new Error('refused');
    if (inputs.includes(-2)) throw Object.assign(new Error('connection refused'), { code: 'ECONNREFUSED' });
    return inputs.map((n) => n * 10);
  });
  return { run, batches };
}

describe('statements for many requests at once (coalesced)', () => {
  it('a call that finds nothing running goes at once, alone; calls made meanwhile go together next', async () => {
    const { run, batches } = statement();
    const db = aDb();
    expect(await Promise.all([1, 2, 3, 4].map((n) => run(db, n)))).toEqual([10, 20, 30, 40]);
    expect(batches).toEqual([[1], [2, 3, 4]]);
    expect(await run(db, 5)).toBe(50);
    expect(batches.at(-1)).toEqual([5]);
  });

  it('when a batch fails, each of its inputs is tried alone: only the one that fails gets the error', async () => {
    const { run, batches } = statement();
    const db = aDb();
    const answers = await Promise.allSettled([0, 1, -1, 2].map((n) => run(db, n)));
    expect(answers.map((a) => (a.status === 'fulfilled' ? a.value : (a.reason as Error).message))).toEqual([
      0,
      10,
      'refused',
      20,
    ]);
    expect(batches).toEqual([[0], [1, -1, 2], [1], [-1], [2]]);
  });

  it('when the database is away, every input of the batch fails at once, none is tried again alone', async () => {
    const { run, batches } = statement();
    const db = aDb();
    const answers = await Promise.allSettled([0, 1, -2, 2].map((n) => run(db, n)));
    expect(answers.map((a) => (a.status === 'fulfilled' ? a.value : (a.reason as Error).message))).toEqual([
      0,
      'connection refused',
      'connection refused',
      'connection refused',
    ]);
    expect(batches).toEqual([[0], [1, -2, 2]]);
  });

  it('a batch that runs long holds back the calls after it for 20 ms at most, not until it is done', async () => {
    const { run, batches } = statement();
    const db = aDb();
    const done: number[] = [];
    const track = (n: number) => run(db, n).then((answer) => done.push(answer));
    const slow = track(1000);
    const early = track(1);
    await sleep(40);
    await Promise.all([track(2), track(3)]);
    // 2 and 3 came while the slow batch had run 40 ms: they went beside it, with 1 that was waiting.
    expect(done).toEqual([10, 20, 30]);
    expect(batches).toEqual([[1000], [1, 2], [3]]);
    await Promise.all([slow, early]);
    expect(done).toEqual([10, 20, 30, 10000]);
    // Once it is done, batches go one at a time again.
    await Promise.all([4, 5, 6].map(track));
    expect(batches.slice(3)).toEqual([[4], [5, 6]]);
  });

  it('each database has its own queue', async () => {
    const { run, batches } = statement();
    await Promise.all([run(aDb(), 1), run(aDb(), 2)]);
    expect(batches).toEqual([[1], [2]]);
  });
});
