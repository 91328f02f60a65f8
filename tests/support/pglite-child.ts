/**
 * A second process opening an embedded database folder, for tests of the PGlite lock.
 * Usage: node --import tsx tests/support/pglite-child.ts <dir> [try|hold]
 * Prints one JSON line: {"opened":true,"pid":…} or {"error":name,"message":…}. `try` closes and exits at
 * once; `hold` keeps the database open until its stdin closes (or it is killed).
 */
import { openPglite } from '../../src/db/pglite.js';

const [dir, mode = 'try'] = process.argv.slice(2);
if (!dir) throw new Error('usage: pglite-child.ts <dir> [try|hold]');

try {
  const database = await openPglite({ dir });
  process.stdout.write(`${JSON.stringify({ opened: true, pid: process.pid })}\n`);
  if (mode === 'hold') {
    process.stdin.resume();
    await new Promise((resolve) => process.stdin.on('end', resolve));
  }
  await database.close();
} catch (error) {
  const e = error as Error;
  process.stdout.write(`${JSON.stringify({ error: e.name, message: e.message })}\n`);
  process.exitCode = 2;
}
