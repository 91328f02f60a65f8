import { afterEach, describe, expect, it } from 'vitest';
import { announceWork, createWaker, WORK_CHANNEL } from '../src/dispatch/wake.js';
import type { TestDatabase } from './support/db.js';
import { createTestDatabase, testDbKind } from './support/db.js';
import { sleep } from './support/process.js';

describe('waking dispatchers in other processes', () => {
  let database: TestDatabase | undefined;
  afterEach(async () => {
    await database?.destroy();
    database = undefined;
  });

  it.skipIf(testDbKind !== 'postgres')(
    'announced work reaches a listener on another connection',
    async () => {
      database = await createTestDatabase('postgres');
      const { listen } = database;
      if (!listen) throw new Error('PostgreSQL listens');
      let heard = 0;
      const unlisten = await listen(WORK_CHANNEL, () => heard++);
      await announceWork(database.db);
      for (let i = 0; i < 100 && heard === 0; i++) await sleep(20);
      expect(heard).toBe(1);
      await unlisten();
    },
  );

  it('a burst of kicks wakes this process each time and notifies the others once per interval', async () => {
    let local = 0;
    const announced: number[] = [];
    const kick = createWaker({
      wakeLocal: () => local++,
      announce: async () => {
        announced.push(Date.now());
      },
      everyMs: 100,
    });
    for (let i = 0; i < 50; i++) kick();
    await sleep(10);
    expect(local).toBe(50);
    expect(announced).toHaveLength(1);
    // Kicks within the interval are not lost: one more notification follows when it has passed.
    kick();
    kick();
    for (let i = 0; i < 250 && announced.length < 2; i++) await sleep(20);
    await sleep(150);
    expect(announced).toHaveLength(2);
    expect((announced[1] ?? 0) - (announced[0] ?? 0)).toBeGreaterThanOrEqual(95);
  });

  it('without other processes (the embedded database) a kick only wakes this one', async () => {
    let local = 0;
    const kick = createWaker({ wakeLocal: () => local++ });
    kick();
    expect(local).toBe(1);
  });
});
