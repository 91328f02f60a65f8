import type { ChildProcess } from 'node:child_process';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDbKind } from './support/db.js';
import { freePort, until } from './support/process.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** What a deployment takes from a clone: the tests, docs and tools stay behind. */
const SHIPPED = [
  'package.json',
  'package-lock.json',
  'tsconfig.json',
  'scripts',
  'src',
  'drizzle',
  'templates',
];

/**
 * Issue 23: a production install, made as the README's Deploy says (`npm ci && npm run build && npm prune
 * --omit=dev`), runs the service and the CLI compiled: no tsx, no esbuild, no browser package at run time
 * (/docs and the ALTCHA widget are served from the build's copies). On PGlite, the database a newcomer
 * starts with; the install is the same for PostgreSQL.
 */
describe.skipIf(testDbKind !== 'pglite')('a production install', { timeout: 240_000 }, () => {
  let dir: string;
  let service: ChildProcess | undefined;
  let base: string;
  const run = (command: string, args: string[], env: NodeJS.ProcessEnv = process.env) =>
    promisify(execFile)(command, args, { cwd: dir, env, timeout: 180_000 });
  const env = (port: number): NodeJS.ProcessEnv => ({
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    PORT: String(port),
    PUBLIC_URL: `http://localhost:${port}`,
    DATA_DIR: join(dir, 'data'),
    ALTCHA_HMAC_KEY: 'a production install test key, long enough',
  });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'oneletter-production-'));
    for (const entry of SHIPPED) await cp(join(ROOT, entry), join(dir, entry), { recursive: true });
    await run('npm', ['ci', '--no-audit', '--no-fund']);
    await run('npm', ['run', 'build']);
    await run('npm', ['prune', '--omit=dev', '--no-audit', '--no-fund']);
  });
  afterAll(async () => {
    if (service?.pid) {
      try {
        process.kill(-service.pid, 'SIGKILL');
      } catch {}
    }
    await rm(dir, { recursive: true, force: true });
  });

  it('holds no dev package', async () => {
    const installed = (name: string) => existsSync(join(dir, 'node_modules', name, 'package.json'));
    for (const dev of ['tsx', 'esbuild', 'typescript', 'vitest', 'swagger-ui-dist', 'altcha'])
      expect(installed(dev), dev).toBe(false);
    expect(installed('@electric-sql/pglite')).toBe(true);
  });

  it('starts with `npm start`, serves /docs and the ALTCHA widget, and the CLI talks to it', async () => {
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    let output = '';
    // Its own process group: npm, its shell and node all go at the end.
    service = spawn('npm', ['start'], { cwd: dir, env: env(port), detached: true });
    service.stdout?.on('data', (chunk) => {
      output += chunk;
    });
    service.stderr?.on('data', (chunk) => {
      output += chunk;
    });
    await until(
      async () => (await fetch(`${base}/healthz`).catch(() => undefined))?.status === 200,
      60_000,
      () => `the production install did not start:\n${output}`,
    );
    expect(output).not.toMatch(/esbuild|tsx/);

    const bundle = await fetch(`${base}/docs/swagger-ui-bundle.js`);
    expect(bundle.status).toBe(200);
    expect((await bundle.arrayBuffer()).byteLength).toBeGreaterThan(100_000);
    expect((await fetch(`${base}/docs/swagger-ui.css`)).status).toBe(200);
    for (const file of ['widget.js', 'widget.css', 'worker.js'])
      expect((await fetch(`${base}/altcha/${file}`)).status, file).toBe(200);

    // The CLI, from the same folder: the token comes from the data folder, the service from PUBLIC_URL.
    const token = (await readFile(join(dir, 'data', 'publisher-token'), 'utf8')).trim();
    expect(output).toContain(token);
    const cliEnv = { ...env(port), PUBLIC_URL: base };
    const published = await run(
      'npm',
      [
        'run',
        '--silent',
        'publish',
        '--',
        'first',
        '--title',
        'First',
        '--url',
        'https://example.test/first',
      ],
      cliEnv,
    );
    expect(published.stdout).toContain('Published "first"');
    expect(published.stdout).toContain('Send-out done: 0 sent');
    const stats = await run('npm', ['run', '--silent', 'cli', '--', 'stats'], cliEnv);
    expect(stats.stdout).toContain('first');
  });
});
