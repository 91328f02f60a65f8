/** Baseline: Hono's hello-world on @hono/node-server, answering the subscribe route with a fixed body. */
import { serve } from '@hono/node-server';
import { Hono } from 'hono';

const app = new Hono();
app.get('/', (c) => c.text('Hello Hono!'));
app.post('/subscribe', (c) => c.json({ status: 'pending' }, 202));

serve({ fetch: app.fetch, port: Number(process.env.PORT) }, (info) => {
  process.stdout.write(`listening on ${info.port}\n`);
});

// Stopped by the benchmark: exit normally, so that a CPU profile (BENCH_PROFILE_DIR) is written.
process.on('SIGTERM', () => process.exit(0));
