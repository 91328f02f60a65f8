import { getHeapSpaceStatistics } from 'node:v8';

/** V8's young generation as a process starts is 1 MiB (two semi-spaces of 512 KiB); a step or two above it is left. */
const YOUNG_AT_START = 2 * 1024 * 1024;

/** How large V8's young generation is now, in bytes. */
export function youngGeneration(): number {
  return getHeapSpaceStatistics().find((space) => space.space_name === 'new_space')?.space_size ?? 0;
}

/**
 * Gives back, at rest, the memory a burst of work left behind (`npm start` and `npm run worker` run node with
 * --expose-gc for it). A send-out grows V8's young generation to 2 × 16 MiB, and V8 gives it back only at its
 * first scavenge at rest, which an idle process reaches 20 s to 3 minutes later; the old generation keeps the
 * garbage the send-out promoted until V8's memory reducer runs, which may be never.
 *
 * So, while the young generation is larger than at start, a full collection runs every `everyMs`. V8 shrinks
 * the young generation at a full collection when little was allocated in the 5 s before it (so `everyMs` is
 * longer than that): the first collection at rest frees the old generation's garbage (and, with
 * --compact-on-every-full-gc, gives back the pages it leaves sparse), the next gives back the young
 * generation. While the process works, V8 keeps its young generation, and the collections cost a few
 * milliseconds every `everyMs`. Once the young generation is back near its size at start, nothing runs until
 * work grows it again. Figures: docs/performance.md, Memory.
 *
 * Without `gc` (node started without --expose-gc) it does nothing.
 */
export function trimAtRest(gc: NodeJS.GCFunction | undefined, everyMs = 15_000): { stop(): void } {
  if (!gc) return { stop() {} };
  const timer = setInterval(() => {
    if (youngGeneration() <= YOUNG_AT_START) return;
    gc();
    // Shrunk: the process is at rest. From Node 22 on, V8 keeps the pages it freed pooled for reuse, and only a
    // memory-reducing collection gives them back (Node 20's V8 gives them back at once, and knows no flavor).
    if (youngGeneration() <= YOUNG_AT_START) gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
  }, everyMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
