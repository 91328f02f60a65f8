import { defineConfig } from 'vitest/config';

/**
 * The slow tier (`npm run test:slow`): tests that need a tool beyond Node and PostgreSQL, or that start the
 * service or the CLI as processes of their own. Each fails, saying what to install, when its tool is missing.
 */
export const SLOW_TESTS = [
  // A browser: Debian's Chromium, driven by playwright-core.
  'tests/e2e/**/*.test.ts',
  // A real workerd through `wrangler dev` (installed on first use in tools/workers).
  'tests/worker.test.ts',
  'tests/webhook.ses.workers.test.ts',
  'tests/worker.altcha.test.ts',
  'tests/webhook.providers.workers.test.ts',
  // The service and the CLI as separate processes (node --import tsx src/entry/…).
  'tests/*.process.test.ts',
  'tests/*.cli.test.ts',
  'tests/cli.test.ts',
  'tests/sendout.workers.test.ts',
  'tests/sendout.crash.test.ts',
  'tests/pglite-lock.test.ts',
  // At scale: 100,000 subscribers imported, exported and listed (figures printed).
  'tests/publisher-tools.bulk.test.ts',
  // SpamAssassin's scores; Postfix's smtp-sink under the benchmark.
  'tests/deliverability.spamassassin.test.ts',
  'tests/bench.smoke.test.ts',
  // Debian's Dovecot, started by the test: the bounce mailbox read over IMAP.
  'tests/bounces.mailbox.test.ts',
  // Processes killed, connections cut, SMTP faults (at a small scale; `npm run test:chaos` for the large one).
  'tests/chaos.*.test.ts',
];

// Runs in each project (the root project would run it too, without a database of its own).
const globalSetup = ['tests/support/template.ts', 'tests/support/tools.ts'];

const databases = [
  { name: 'pglite', env: { TEST_DB: 'pglite' } },
  { name: 'postgres', env: { TEST_DB: 'postgres' } },
] as const;

// Every test runs twice over: on the embedded PGlite and on a real PostgreSQL server (TEST_DATABASE_URL,
// default postgres://postgres@127.0.0.1:5432/test). Each test file gets a database of its own, a copy of one
// migrated in the global setup. `npm test` runs the fast tier (projects pglite and postgres), `npm run
// test:slow` the slow one (pglite-slow and postgres-slow), `vitest run` both, the fast tier first.
export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    projects: [
      ...databases.map(({ name, env }) => ({
        extends: true as const,
        test: {
          name,
          env,
          globalSetup,
          include: ['tests/**/*.test.ts'],
          exclude: SLOW_TESTS,
          // Three files at a time on two cores: a test waits on sockets and timers much of the time.
          maxWorkers: 3,
          // A worker process runs file after file of its project, importing the app and PGlite once (its
          // import was half the time of a file). Files share no state: each builds its own service.
          isolate: false,
        },
      })),
      ...databases.map(({ name, env }) => ({
        extends: true as const,
        test: {
          name: `${name}-slow`,
          env,
          globalSetup,
          include: SLOW_TESTS,
          // Killed processes, lease timeouts and a browser: one file at a time keeps their timing honest.
          maxWorkers: 1,
          sequence: { groupOrder: 1 },
        },
      })),
    ],
  },
});
