// Run by tests/rest.test.ts as `node --expose-gc --import tsx`: grows V8's young generation with a burst of
// short-lived objects, as a send-out does, then rests 12 s, with trimAtRest (argument `trim`) or without.
import { trimAtRest, youngGeneration } from '../../src/entry/rest.js';

let kept: { text: string; numbers: number[] }[] = [];
for (let i = 0; i < 2_000_000; i++) {
  const item = { text: `${'x'.repeat(50)}${i}`, numbers: [i, i + 1] };
  if (i % 100 === 0) kept.push(item);
  if (kept.length > 5000) kept = [];
}
kept = [];
const afterWork = youngGeneration();
const rssAfterWork = process.memoryUsage().rss;
// V8 judges "little allocated" over the last 5 s: the collections must be further apart than that.
const trim = process.argv[2] === 'trim' ? trimAtRest(globalThis.gc, 5500) : undefined;
setTimeout(() => {
  trim?.stop();
  process.stdout.write(
    JSON.stringify({
      afterWork,
      atRest: youngGeneration(),
      rssAfterWork,
      rssAtRest: process.memoryUsage().rss,
    }),
  );
}, 12_000);
