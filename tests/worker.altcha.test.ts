import { solveChallenge } from 'altcha-lib';
import { deriveKey } from 'altcha-lib/algorithms/web/pbkdf2';
import type { Challenge } from 'altcha-lib/types';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MIGRATIONS_FOLDER } from '../src/db/open.js';
import { openPostgres } from '../src/db/postgres.js';
import { createServerDatabase, dropServerDatabase, testDbKind } from './support/db.js';
import { PUBLISHER_TOKEN } from './support/service.js';
import type { SmtpSink } from './support/smtp.js';
import { startSmtpSink } from './support/smtp.js';
import type { WranglerDev } from './support/wrangler.js';
import { startWrangler } from './support/wrangler.js';

// Issue 26 on Workers: challenges signed and checked with WebCrypto in workerd, the widget served from the
// bundle. The Worker needs PostgreSQL, so this runs in the postgres project only.
describe.skipIf(testDbKind !== 'postgres')('ALTCHA on a Cloudflare Worker (wrangler dev)', () => {
  let databaseUrl: string;
  let smtp: SmtpSink;
  let wrangler: WranglerDev | undefined;

  beforeAll(async () => {
    databaseUrl = await createServerDatabase();
    await (await openPostgres(databaseUrl, { migrationsFolder: MIGRATIONS_FOLDER })).close();
    smtp = await startSmtpSink();
    wrangler = await startWrangler({
      vars: (address) => ({
        DATABASE_URL: databaseUrl,
        SMTP_URL: smtp.url,
        PUBLISHER_TOKEN,
        PUBLIC_URL: address,
        MAIL_FROM: 'Essays <essays@example.test>',
        SUBSCRIBE_LIMIT_PER_IP: '0',
        ALTCHA_HMAC_KEY: 'altcha-worker-key-0123456789abcdef01234567',
      }),
      ready: async (address) => (await fetch(`${address}/healthz`)).ok,
    });
  }, 120_000);

  afterAll(async () => {
    await wrangler?.stop();
    await smtp?.close();
    if (databaseUrl) await dropServerDatabase(databaseUrl);
  });

  const subscribe = (email: string, altcha: string) =>
    fetch(`${wrangler?.base}/subscribe`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email, altcha }),
    });

  it('gives a challenge, takes its solution once, and serves the widget', async () => {
    const challenge = (await (await fetch(`${wrangler?.base}/altcha`)).json()) as Challenge;
    const solution = await solveChallenge({ challenge, deriveKey });
    const payload = btoa(JSON.stringify({ challenge, solution }));
    expect((await subscribe('worker-altcha@example.org', payload)).status).toBe(202);
    const again = await subscribe('worker-again@example.org', payload);
    expect(again.status).toBe(422);
    expect(((await again.json()) as { error: { code: string } }).error.code).toBe('verification_failed');

    for (const file of ['widget.js', 'widget.css', 'worker.js']) {
      const res = await fetch(`${wrangler?.base}/altcha/${file}`);
      expect(res.status, file).toBe(200);
      expect((await res.text()).length).toBeGreaterThan(1000);
    }
  });
});
