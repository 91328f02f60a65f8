import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../src/db/client.js';
import { MIGRATIONS_FOLDER } from '../src/db/open.js';
import { openPostgres } from '../src/db/postgres.js';
import { createServerDatabase, dropServerDatabase, testDbKind } from './support/db.js';
import { addresses, seedSubscribers } from './support/sendout.js';
import { PUBLISHER_TOKEN } from './support/service.js';
import type { SmtpSink } from './support/smtp.js';
import { startSmtpSink } from './support/smtp.js';
import type { ProviderKeys } from './support/webhooks.js';
import { fixture, makeProviderKeys, resendRequest, sendgridRequest } from './support/webhooks.js';
import type { WranglerDev } from './support/wrangler.js';
import { startWrangler } from './support/wrangler.js';

// Issue 25 on Workers: the providers' signatures (Svix's HMAC, SendGrid's ECDSA P-256) checked with WebCrypto
// in workerd, and the event acted on. The Worker needs PostgreSQL, so this runs in the postgres project only.
describe.skipIf(testDbKind !== 'postgres')('provider webhooks on a Cloudflare Worker (wrangler dev)', () => {
  let databaseUrl: string;
  let database: Database;
  let smtp: SmtpSink;
  let keys: ProviderKeys;
  let wrangler: WranglerDev | undefined;

  beforeAll(async () => {
    databaseUrl = await createServerDatabase();
    database = await openPostgres(databaseUrl, { migrationsFolder: MIGRATIONS_FOLDER });
    smtp = await startSmtpSink();
    const made = makeProviderKeys();
    keys = made.keys;
    wrangler = await startWrangler({
      vars: (address) => ({
        ...made.env,
        DATABASE_URL: databaseUrl,
        SMTP_URL: smtp.url,
        PUBLISHER_TOKEN,
        PUBLIC_URL: address,
        MAIL_FROM: 'Essays <essays@example.test>',
      }),
      ready: async (address) => (await fetch(`${address}/healthz`)).ok,
    });
  }, 120_000);

  afterAll(async () => {
    await wrangler?.stop();
    await database?.close();
    await smtp?.close();
    if (databaseUrl) await dropServerDatabase(databaseUrl);
  });

  const status = async (email: string) => {
    const res = await fetch(`${wrangler?.base}/api/subscribers/${encodeURIComponent(email)}`, {
      headers: { authorization: `Bearer ${PUBLISHER_TOKEN}` },
    });
    return ((await res.json()) as { subscriber: { status: string } }).subscriber.status;
  };
  const post = (path: string, init: RequestInit) => fetch(`${wrangler?.base}${path}`, init);

  it('acts on a signed Resend bounce and a signed SendGrid spam report, and refuses a forged one', async () => {
    const [bounced, complained, forged] = addresses('worker-hook', 3) as [string, string, string];
    await seedSubscribers(database.db, 'confirmed', [bounced, complained, forged]);

    expect(
      (await post('/webhooks/resend', resendRequest(keys, fixture('resend-bounced', bounced)))).status,
    ).toBe(200);
    expect(await status(bounced)).toBe('bounced');

    const report = fixture('sendgrid-spamreport', complained);
    expect((await post('/webhooks/sendgrid', sendgridRequest(keys, report))).status).toBe(200);
    expect(await status(complained)).toBe('unsubscribed');

    const other = makeProviderKeys().keys;
    const refused = await post('/webhooks/resend', resendRequest(other, fixture('resend-bounced', forged)));
    expect(refused.status).toBe(401);
    expect(await status(forged)).toBe('confirmed');
  });
});
