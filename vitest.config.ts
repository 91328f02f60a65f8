import { defineConfig } from 'vitest/config';

// `npm test` runs every test twice over: on the embedded PGlite and on a real PostgreSQL server
// (TEST_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/test). Each test file gets a fresh database.
export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    projects: [
      { extends: true, test: { name: 'pglite', env: { TEST_DB: 'pglite' } } },
      { extends: true, test: { name: 'postgres', env: { TEST_DB: 'postgres' } } },
    ],
  },
});
