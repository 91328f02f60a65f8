/**
 * `npm run build`: bundles the service's entries (src/entry/node.ts, cli.ts, migrate.ts) into plain
 * JavaScript in dist/entry/, which `npm start`, `npm run worker` and the CLI run with node alone. What an
 * entry loads only when needed (import() in the sources: a mail transport, the feed watcher, the bounce
 * mailbox, the docs) stays in chunks of its own, loaded at its first use.
 *
 * One bundle instead of a file per module: the service starts with a few modules where it had some 800
 * (its own and its packages'), and holds about 15 MiB less at rest (measured with `npm start` on
 * PostgreSQL: RssAnon 45 → 30 MiB at rest). Packages that read files of their own at run time stay
 * in node_modules: PGlite (its WASM), swagger-ui-dist and the altcha widget (files served as they are),
 * imapflow (only the bounce mailbox loads it).
 *
 * dist/entry/ is as deep as src/entry/: paths from import.meta.url (../../drizzle, ../../templates) resolve
 * as they do from the sources. Files are overwritten, never removed first, and chunks are named by their
 * content, so a service already running from dist/ can still import what it loads lazily.
 */
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));

await build({
  absWorkingDir: root,
  entryPoints: ['src/entry/node.ts', 'src/entry/cli.ts', 'src/entry/migrate.ts'],
  outdir: 'dist/entry',
  entryNames: '[name]',
  chunkNames: '[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: ['@electric-sql/pglite', 'swagger-ui-dist', 'altcha', 'imapflow'],
  // Packages written as CommonJS call require(), which an ES module has to be given.
  banner: {
    js: "import { createRequire as bundleRequire } from 'node:module'; const require = bundleRequire(import.meta.url);",
  },
  sourcemap: 'linked',
  logLevel: 'warning',
});
