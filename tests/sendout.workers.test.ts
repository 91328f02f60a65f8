import { sql } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { testDbKind } from './support/db.js';
import {
  publishEssay,
  runCli,
  seedSubscribers,
  sleep,
  startServiceProcess,
  useProcessSite,
  waitUntilDone,
} from './support/process.js';
import { PUBLISHER_TOKEN } from './support/service.js';

describe('several processes share one database', { timeout: 150_000 }, () => {
  const site = useProcessSite();

  it.skipIf(testDbKind !== 'postgres')(
    'two dispatcher processes drain one send-out together, one letter per subscriber',
    async () => {
      const { database, smtp } = site;
      const addresses = await seedSubscribers(database, 2000);
      const env = { ...database.env, SMTP_URL: smtp.url, DISPATCH_BATCH_SIZE: '100' };
      const [server, ...workers] = await Promise.all([
        startServiceProcess({ ...env, DISPATCHER: 'false' }),
        startServiceProcess(env, ['--worker']),
        startServiceProcess(env, ['--worker']),
      ]);
      if (!server) throw new Error('no server');
      await Promise.all([server.ready(), ...workers.map((w) => w.waitForOutput('"dispatcher started"'))]);
      expect(server.output.stdout).toContain('"dispatcher":"off');

      const startedAt = Date.now();
      await publishEssay(server, 'two-workers');
      const sendout = await waitUntilDone(server, 'two-workers', 60_000);
      const drainMs = Date.now() - startedAt;
      expect(sendout).toMatchObject({ total: 2000, sent: 2000, pending: 0, failed: 0, unknown: 0 });

      const letters = new Map<string, number>();
      for (const mail of smtp.received) letters.set(mail.to, (letters.get(mail.to) ?? 0) + 1);
      expect([...letters].filter(([, n]) => n > 1)).toEqual([]);
      expect(addresses.filter((a) => !letters.has(a))).toEqual([]);
      expect(smtp.received).toHaveLength(2000);

      // A sent delivery keeps the id of the dispatcher that sent it.
      const shares = await database.query<{ n: number }>(sql`
        select count(*)::int as n from deliveries where status = 'sent' group by claimed_by order by n desc`);
      expect(shares).toHaveLength(2);
      for (const share of shares) expect(Number(share.n)).toBeGreaterThan(100);

      const exits = await Promise.all([server, ...workers].map((p) => p.stop('SIGTERM')));
      for (const exit of exits) expect(exit).toEqual({ code: 0, signal: null });
      console.log(
        `[postgres] two workers sent 2000 letters in ${drainMs} ms, ${shares.map((s) => s.n).join(' + ')}`,
      );
    },
  );

  it.skipIf(testDbKind !== 'postgres')(
    'a worker starts on work queued by other processes at once, not at its next poll',
    async () => {
      const { database, smtp } = site;
      const addresses = await seedSubscribers(database, 50);
      // A poll a minute away: only the database's notification can wake the worker within the test.
      const env = { ...database.env, SMTP_URL: smtp.url, DISPATCH_POLL_MS: '60000' };
      const [server, worker] = await Promise.all([
        startServiceProcess({ ...env, DISPATCHER: 'false' }),
        startServiceProcess(env, ['--worker']),
      ]);
      if (!server || !worker) throw new Error('no processes');
      await Promise.all([server.ready(), worker.waitForOutput('"dispatcher started"')]);
      await sleep(500); // the worker's first round found nothing: it sleeps now

      // A subscription on the web process: the confirmation email goes out from the worker.
      const subscribed = await server.request('/subscribe', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email: 'new-reader@example.test' }),
      });
      expect(subscribed.status).toBe(202);
      const [confirmation] = await smtp.waitFor(1, 20_000);
      expect(confirmation?.to).toBe('new-reader@example.test');

      // An essay published straight into the database by `npm run publish -- --db`, a third process.
      const startedAt = Date.now();
      const cli = await runCli(
        ['publish', 'woken', '--title', 'Woken', '--url', 'https://example.test/woken', '--db', '--no-wait'],
        {
          PATH: process.env.PATH,
          HOME: process.env.HOME,
          ...database.env,
          PUBLISHER_TOKEN,
          MAIL_FROM: 'Essays <essays@example.test>',
        },
      );
      expect(cli.stderr).toBe('');
      expect(cli.code).toBe(0);
      const sendout = await waitUntilDone(server, 'woken', 20_000);
      expect(sendout).toMatchObject({ total: 50, sent: 50, pending: 0 });
      expect(smtp.received.filter((m) => addresses.includes(m.to))).toHaveLength(50);
      console.log(
        `[postgres] a worker polling every minute sent 50 letters ${Date.now() - startedAt} ms after publishing`,
      );
    },
  );

  it.skipIf(testDbKind !== 'pglite')(
    'a second process on the embedded database is refused, pointing at DATABASE_URL',
    async () => {
      const { database, smtp } = site;
      const first = await startServiceProcess({ ...database.env, SMTP_URL: smtp.url });
      await first.ready();

      const second = await startServiceProcess({ ...database.env, SMTP_URL: smtp.url }, ['--worker']);
      const exit = await second.exited;
      expect(exit.code).not.toBe(0);
      expect(exit.code).not.toBeNull();
      expect(second.output.stderr).toContain('already open in another process');
      expect(second.output.stderr).toContain('DATABASE_URL');
      expect(second.output.stderr).not.toMatch(/\n\s+at /);

      // The first process is unharmed and still owns the database.
      expect((await fetch(`${first.url}/readyz`)).status).toBe(200);
      expect(await first.stop('SIGTERM')).toEqual({ code: 0, signal: null });

      // Once it has stopped, the next process opens the database.
      const next = await startServiceProcess({ ...database.env, SMTP_URL: smtp.url });
      await next.ready();
    },
  );
});
