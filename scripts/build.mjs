/**
 * `npm run build`: bundles the service's entries (src/entry/node.ts, cli.ts, migrate.ts) into plain
 * JavaScript in dist/entry/, which `npm start`, `npm run worker` and the CLI commands run with node alone,
 * and copies the browser files the service serves (src/entry/vendor.ts) into dist/vendor/. Running through
 * tsx instead would keep its loader and esbuild's service in the process: about 45 MiB more resident
 * memory, for nothing at run time. Takes well under a second; `npm start` and the other commands run it
 * first with --if-possible: in a production install (no esbuild, a dev dependency) they run the dist/ it
 * was given.
 *
 * One bundle instead of a file per module: the service starts with a few dozen modules where it had some
 * 800 (its own and its packages'), and holds less at rest (npm start on PostgreSQL, RSS after start:
 * 103 → 81 MB before the lazy loading of vendor.ts's era). What an entry loads only when needed (import()
 * in the sources: a mail transport, the feed parser, the bounce mailbox, LiquidJS, altcha-lib) stays in a
 * chunk of its own, loaded at its first use. PGlite (it reads its WASM beside its own files) and imapflow
 * stay in node_modules.
 *
 * dist/entry/ is as deep as src/entry/: paths from import.meta.url (../../drizzle, ../../templates,
 * ../vendor) resolve as they do from the sources. Files are overwritten, never removed first, and chunks
 * are named by their content, so a service already running from dist/ can still import what it loads lazily.
 */

import { existsSync } from 'node:fs';
import { copyFile, mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const out = join(root, 'dist');

let esbuild;
try {
  esbuild = await import('esbuild');
} catch {
  if (process.argv.includes('--if-possible') && existsSync(join(out, 'entry', 'node.js'))) process.exit(0);
  process.stderr.write(
    existsSync(join(out, 'entry', 'node.js'))
      ? 'esbuild is not installed (a production install?): `npm run build` needs the dev dependencies (npm ci).\n'
      : 'dist/ is missing and esbuild is not installed: build first with `npm ci && npm run build`.\n',
  );
  process.exit(1);
}

await esbuild.build({
  absWorkingDir: root,
  entryPoints: ['src/entry/node.ts', 'src/entry/cli.ts', 'src/entry/migrate.ts', 'src/entry/vendor.ts'],
  outdir: join(out, 'entry'),
  entryNames: '[name]',
  chunkNames: '[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // A package's ES module build before its CommonJS one: LiquidJS's CommonJS build, bundled and loaded
  // lazily, came out of esbuild's interop without its named exports ("Liquid is not a constructor").
  mainFields: ['module', 'main'],
  external: ['@electric-sql/pglite', 'imapflow', 'swagger-ui-dist', 'altcha'],
  // Packages written as CommonJS call require(), which an ES module has to be given.
  banner: {
    js: "import { createRequire as bundleRequire } from 'node:module'; const require = bundleRequire(import.meta.url);",
  },
  sourcemap: 'linked',
  logLevel: 'warning',
});

const { VENDOR_FILES } = await import(pathToFileURL(join(out, 'entry', 'vendor.js')).href);
for (const [pkg, files] of Object.entries(VENDOR_FILES)) {
  for (const file of files) {
    const to = join(out, 'vendor', pkg, file);
    await mkdir(dirname(to), { recursive: true });
    await copyFile(join(root, 'node_modules', pkg, file), to);
  }
}
