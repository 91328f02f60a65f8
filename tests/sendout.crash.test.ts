import { sql } from 'drizzle-orm';
import { afterEach, describe, expect, it } from 'vitest';
import { testDbKind } from './support/db.js';
import type { ProcessDatabase, ServiceProcess, TcpProxy } from './support/process.js';
import {
  publishEssay,
  seedSubscribers,
  sleep,
  startServiceProcess,
  startTcpProxy,
  until,
  useProcessSite,
  waitUntilDone,
} from './support/process.js';
import type { SmtpSink } from './support/smtp.js';

/** How many times each address appears at the sink. */
function lettersPerAddress(smtp: SmtpSink): Map<string, number> {
  const counts = new Map<string, number>();
  for (const mail of smtp.received) counts.set(mail.to, (counts.get(mail.to) ?? 0) + 1);
  return counts;
}

function deliveriesByStatus(database: ProcessDatabase) {
  return database.query<{ email: string; status: string }>(sql`
    select s.email, d.status::text as status from deliveries d join subscribers s on s.id = d.subscriber_id`);
}

describe(`a send-out survives its process being stopped (${testDbKind})`, { timeout: 150_000 }, () => {
  const site = useProcessSite();

  const start = (): Promise<ServiceProcess> =>
    startServiceProcess({ ...site.database.env, SMTP_URL: site.smtp.url });

  it('sends one letter per subscriber, never more, when the process is killed (-9) mid send-out and started again', async () => {
    const { database, smtp } = site;
    const addresses = await seedSubscribers(database, 2000);
    smtp.delayMs = 5;
    const first = await start();
    await first.ready();
    const published = await publishEssay(first, 'killed-mid-way');
    expect(published.total).toBe(2000);

    await smtp.waitFor(300, 30_000);
    first.child.kill('SIGKILL');
    const exit = await first.exited;
    expect(exit.signal).toBe('SIGKILL');
    const atKill = smtp.received.length;

    const restartedAt = Date.now();
    const second = await start();
    await second.ready();
    const sendout = await waitUntilDone(second, 'killed-mid-way', 60_000);
    const recoveryMs = Date.now() - restartedAt;
    await second.stop();

    const letters = lettersPerAddress(smtp);
    const twice = [...letters].filter(([, n]) => n > 1);
    expect(twice).toEqual([]);
    expect(sendout.total).toBe(2000);
    expect(sendout.sent + sendout.unknown).toBe(2000);
    expect(sendout.failed + sendout.skipped + sendout.pending).toBe(0);
    expect(sendout.unknown).toBeLessThanOrEqual(50);
    expect(letters.size).toBeGreaterThanOrEqual(sendout.sent);

    // Everyone marked sent got the letter; whoever did not is among the unknown (in SMTP's hands at the kill).
    const ledger = await deliveriesByStatus(database);
    const missing = addresses.filter((a) => !letters.has(a));
    const unknown = new Set(ledger.filter((d) => d.status === 'unknown').map((d) => d.email));
    for (const d of ledger) if (d.status === 'sent') expect(letters.has(d.email), d.email).toBe(true);
    for (const a of missing) expect(unknown.has(a), a).toBe(true);

    console.log(
      `[${testDbKind}] kill -9 after ${atKill} letters; restart finished the send-out in ${recoveryMs} ms: ` +
        `sent ${sendout.sent}, unknown ${sendout.unknown} (of which ${sendout.unknown - missing.length} ` +
        `did reach the sink), ${letters.size} distinct recipients, ${smtp.received.length} letters in all`,
    );
  });

  it('stops cleanly on SIGTERM mid send-out, leaves nothing in flight, and the restart sends the rest', async () => {
    const { database, smtp } = site;
    const addresses = await seedSubscribers(database, 600);
    smtp.delayMs = 5;
    const first = await start();
    await first.ready();
    await publishEssay(first, 'stopped-mid-way');

    await smtp.waitFor(150, 30_000);
    const signalledAt = Date.now();
    const exit = await first.stop('SIGTERM');
    const stopMs = Date.now() - signalledAt;
    const atStop = smtp.received.length;
    expect(exit, first.output.stderr).toEqual({ code: 0, signal: null });
    expect(stopMs).toBeLessThan(5_000);
    expect(first.output.stdout).toContain('"msg":"stopped"');

    const ledger = await deliveriesByStatus(database);
    const byStatus = (status: string) => ledger.filter((d) => d.status === status).length;
    expect(byStatus('claimed') + byStatus('sending') + byStatus('unknown')).toBe(0);
    expect(byStatus('sent')).toBe(atStop);
    expect(byStatus('pending')).toBe(600 - atStop);

    const second = await start();
    await second.ready();
    const sendout = await waitUntilDone(second, 'stopped-mid-way', 60_000);
    expect(sendout).toMatchObject({ total: 600, sent: 600, unknown: 0, failed: 0, skipped: 0, pending: 0 });

    const letters = lettersPerAddress(smtp);
    expect([...letters].filter(([, n]) => n > 1)).toEqual([]);
    expect(addresses.filter((a) => !letters.has(a))).toEqual([]);
    expect(smtp.received).toHaveLength(600);
    console.log(
      `[${testDbKind}] SIGTERM after ${atStop} letters: exited 0 in ${stopMs} ms; the restart sent the rest`,
    );
  });
});

describe.skipIf(testDbKind !== 'postgres')(
  'a send-out survives the database going away',
  { timeout: 150_000 },
  () => {
    const site = useProcessSite();
    let proxy: TcpProxy | undefined;

    afterEach(async () => {
      await proxy?.close();
    });

    it('answers 503 with a clear message while the database is down, and finishes the send-out when it is back', async () => {
      const { database, smtp } = site;
      const addresses = await seedSubscribers(database, 1000);
      proxy = await startTcpProxy(database.url as string);
      const service = await startServiceProcess({
        DATABASE_URL: proxy.url,
        SMTP_URL: smtp.url,
        LEASE_SECONDS: '5',
      });
      await service.ready();
      await publishEssay(service, 'through-an-outage');
      await smtp.waitFor(150, 30_000);

      // A short outage, well within a lease: the dispatcher's claims outlive it.
      await proxy.cut();
      const blipAt = Date.now();
      let ready: Response | undefined;
      await until(
        async () => {
          ready = await service.request('/readyz');
          return ready.status === 503;
        },
        3_000,
        () => `/readyz kept answering ${ready?.status} with the database down`,
      );
      expect(await ready?.json()).toMatchObject({ status: 'unavailable', database: 'unreachable' });

      const subscribe = await service.request('/subscribe', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email: 'new-reader@example.test' }),
      });
      expect(subscribe.status).toBe(503);
      expect(subscribe.headers.get('retry-after')).toBe('60');
      const body = (await subscribe.json()) as { error: { code: string; message: string } };
      expect(body).toEqual({ error: { code: 'database_unavailable', message: expect.any(String) } });
      expect(body.error.message).toMatch(/database/i);

      const form = await service.request('/subscribe', {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html' },
        body: 'email=form-reader%40example.test',
      });
      expect(form.status).toBe(503);
      const page = await form.text();
      expect(page).toContain('<');
      expect(page).not.toMatch(/\bat .+:\d+:\d+|ECONNREFUSED|Error:/);
      expect((await service.request('/api/essays/through-an-outage')).status).toBe(503);

      await sleep(Math.max(0, 1_500 - (Date.now() - blipAt)));
      await proxy.restore();
      const blipMs = Date.now() - blipAt;
      expect(blipMs).toBeLessThan(4_000);
      await service.ready(10_000);
      const afterBlip = smtp.received.length;
      await smtp.waitFor(afterBlip + 150, 30_000);

      // A long outage, past the lease: the claims expire meanwhile and are reaped when the database is back.
      await proxy.cut();
      const downAt = Date.now();
      await sleep(7_000);
      await proxy.restore();
      const downMs = Date.now() - downAt;
      await service.ready(20_000);
      const sendout = await waitUntilDone(service, 'through-an-outage', 60_000);
      const upMs = Date.now() - downAt - downMs;

      const letters = new Map<string, number>();
      for (const mail of smtp.received) letters.set(mail.to, (letters.get(mail.to) ?? 0) + 1);
      expect([...letters].filter(([, n]) => n > 1)).toEqual([]);
      expect(sendout.total).toBe(1000);
      expect(sendout.sent + sendout.unknown).toBe(1000);
      expect(sendout.unknown).toBeLessThanOrEqual(50);
      expect(letters.size).toBeGreaterThanOrEqual(sendout.sent);
      expect(addresses.filter((a) => !letters.has(a)).length).toBeLessThanOrEqual(sendout.unknown);
      expect(service.output.stdout).toContain('dispatcher working again');
      expect(await service.stop('SIGTERM')).toEqual({ code: 0, signal: null });
      console.log(
        `[postgres] database down ${blipMs} ms, then ${downMs} ms; the send-out was done ${upMs} ms after it ` +
          `came back: sent ${sendout.sent}, unknown ${sendout.unknown}`,
      );
    });
  },
);
