/**
 * `npm run build`: compiles src/ to plain JavaScript in dist/ (one file per module, same layout), which
 * `npm start` and `npm run worker` run with node alone. Running through tsx instead would keep its loader
 * and esbuild's service in the process: about 45 MiB more resident memory, for nothing at run time.
 * Takes well under a second; `npm start` and `npm run worker` run it first (prestart, preworker).
 */
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
const src = join(root, 'src');
const out = join(root, 'dist');

const entryPoints = readdirSync(src, { recursive: true, withFileTypes: true })
  .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.d.ts'))
  .map((e) => relative(root, join(e.parentPath, e.name)));

// The same depth as src/ (dist/db/open.js where src/db/open.ts is): paths from import.meta.url (drizzle/,
// templates/, node_modules) resolve as they do from the sources. Files are overwritten, never removed
// first, so a service already running from dist/ can still import what it loads lazily.
await build({
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
