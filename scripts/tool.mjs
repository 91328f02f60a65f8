#!/usr/bin/env node
/**
 * Tools that only one command or one test tier needs live in tools/<name>/, each a small package of its own
 * with exact versions in its committed package-lock.json, so that `npm install` stays light (issue 23):
 *
 *   tools/lint     Biome (`npm run lint`, `npm run format`): its binary alone is about 96 MB
 *   tools/workers  wrangler and workerd (`npm run dev:worker`, `npm run deploy`, the Workers tests): ~290 MB
 *   tools/drizzle  drizzle-kit (`npm run db:generate`): ~30 MB
 *   tools/contract Stoplight Prism's validator (tests/openapi.contract.test.ts): ~75 MB
 *
 * Each is installed with `npm ci` on first use, and again when its lockfile changes, saying so.
 * As a command: `node scripts/tool.mjs <name> <bin> [args…]` installs the tool if needed and runs its bin.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const TOOLS = fileURLToPath(new URL('../tools/', import.meta.url));

/** Whether tools/<name>/node_modules holds exactly what its package-lock.json says (npm's hidden lockfile). */
function installed(dir) {
  const hidden = join(dir, 'node_modules', '.package-lock.json');
  if (!existsSync(hidden)) return false;
  const wanted = JSON.parse(readFileSync(join(dir, 'package-lock.json'), 'utf8')).packages;
  const have = JSON.parse(readFileSync(hidden, 'utf8')).packages;
  const direct = Object.keys(wanted[''].dependencies ?? {}).map((name) => `node_modules/${name}`);
  return (
    direct.every((key) => key in have) &&
    Object.entries(have).every(([key, entry]) => wanted[key]?.version === entry.version)
  );
}

/**
 * Installs tools/<name> unless it is installed as its lockfile says; returns its folder. Several processes
 * may ask at once (the test projects): one installs, under a lock folder, and the others wait for it.
 */
export function ensureTool(name) {
  const dir = join(TOOLS, name);
  if (!existsSync(join(dir, 'package-lock.json'))) throw new Error(`No tool "${name}" in ${TOOLS}`);
  if (installed(dir)) return dir;
  const lock = join(dir, '.installing');
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch (error) {
      if (error.code !== 'EEXIST') throw error;
      // Left by an install that was killed: an install takes well under a few minutes.
      if (Date.now() - statSync(lock).mtimeMs > 5 * 60_000) rmdirSync(lock);
      else Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 500);
    }
  }
  try {
    if (installed(dir)) return dir;
    const { description } = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    process.stderr.write(`Installing ${description} into tools/${name} (first use; npm ci there)…\n`);
    const npm = spawnSync('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], {
      cwd: dir,
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    if (npm.status !== 0) throw new Error(`npm ci in tools/${name} failed (exit ${npm.status})`);
    return dir;
  } finally {
    rmdirSync(lock);
  }
}

/** The path of a command that tools/<name> installs, installing the tool first if needed. */
export function toolBin(name, bin) {
  return join(ensureTool(name), 'node_modules', '.bin', bin);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [name, bin, ...args] = process.argv.slice(2);
  if (!name || !bin) {
    process.stderr.write('usage: node scripts/tool.mjs <tool> <bin> [args…]\n');
    process.exit(2);
  }
  const run = spawnSync(toolBin(name, bin), args, { stdio: 'inherit' });
  process.exit(run.status ?? 1);
}
