// Read by drizzle-kit (`npm run db:generate`), which is installed on first use in tools/drizzle rather than in
// node_modules: a plain object, as its defineConfig would return it.
export default {
  dialect: 'postgresql',
  schema: './src/db/schema.ts',
  out: './drizzle',
};
