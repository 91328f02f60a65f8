/**
 * `npm run build`: compiles src/ to plain JavaScript in dist/ (one file per module, same layout), which
 * `npm start`, `npm run worker` and the CLI commands run with node alone, and copies the browser files the
 * service serves (src/entry/vendor.ts) into dist/vendor/. Running through tsx instead would keep its loader
 * and esbuild's service in the process: about 45 MiB more resident memory, for nothing at run time.
 * Takes well under a second; `npm start` and the other commands run it first with --if-possible: in a
 * production install (no esbuild, a dev dependency) they run the dist/ it was given.
 */

import { existsSync, readdirSync } from 'node:fs';
import { copyFile, mkdir } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const src = join(root, 'src');
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

const entryPoints = readdirSync(src, { recursive: true, withFileTypes: true })
  .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.d.ts'))
  .map((e) => relative(root, join(e.parentPath, e.name)));

// The same depth as src/ (dist/db/open.js where src/db/open.ts is): paths from import.meta.url (drizzle/,
// templates/, node_modules) resolve as they do from the sources. Files are overwritten, never removed
// first, so a service already running from dist/ can still import what it loads lazily.
await esbuild.build({
  absWorkingDir: root,
  entryPoints,
  outdir: out,
  outbase: 'src',
  format: 'esm',
  platform: 'node',
  target: 'node20',
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
