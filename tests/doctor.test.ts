import { generateKeyPairSync } from 'node:crypto';
import { Resolver } from 'node:dns/promises';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dkimVerify } from 'mailauth/lib/dkim/verify.js';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { formatReport } from '../src/doctor/cli.js';
import { checkConfiguration } from '../src/doctor/configuration.js';
import { checkDatabase } from '../src/doctor/database.js';
import { checkDkim, checkDmarc, checkSpf, dkimSuggestion } from '../src/doctor/dns.js';
import { runDoctor } from '../src/doctor/doctor.js';
import { checkSmtp, maskedSmtpUrl } from '../src/doctor/smtp.js';
import { createDkimSigner } from '../src/mail/dkim.js';
import { compose } from '../src/mail/smtp.js';
import type { DnsServer } from './support/dns.js';
import { startDnsServer } from './support/dns.js';
import type { ProcessDatabase } from './support/process.js';
import { createProcessDatabase, freePort, runCli } from './support/process.js';
import type { SmtpSink } from './support/smtp.js';
import { startSmtpSink } from './support/smtp.js';

function rsaKey() {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    pem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    spki: publicKey.export({ type: 'spki', format: 'der' }).toString('base64'),
    pkcs1: publicKey.export({ type: 'pkcs1', format: 'der' }).toString('base64'),
  };
}

const signing = rsaKey();
const other = rsaKey();
const DOMAIN = 'example.test';
const SELECTOR = 'oneletter';
const KEY_NAME = `${SELECTOR}._domainkey.${DOMAIN}`;
const PASSWORD = 'correct horse battery staple';

/** The records of a domain that does everything right. */
function goodZone(): Record<string, string[]> {
  return {
    [DOMAIN]: ['google-site-verification=abc', 'v=spf1 ip4:127.0.0.1 -all'],
    [KEY_NAME]: [`v=DKIM1; k=rsa; p=${signing.spki}`],
    [`_dmarc.${DOMAIN}`]: [`v=DMARC1; p=reject; rua=mailto:dmarc@${DOMAIN}`],
  };
}

function resolverFor(dns: DnsServer, timeout = 2000): Resolver {
  const resolver = new Resolver({ timeout, tries: 1 });
  resolver.setServers([dns.address]);
  return resolver;
}

describe('npm run doctor', () => {
  let dns: DnsServer;
  let smtp: SmtpSink;
  let database: ProcessDatabase;
  let dir: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    dns = await startDnsServer();
    smtp = await startSmtpSink({ auth: { user: 'essays', pass: PASSWORD } });
    database = await createProcessDatabase();
    dir = await mkdtemp(join(tmpdir(), 'oneletter-doctor-'));
    await writeFile(join(dir, 'dkim.pem'), signing.pem);
    env = {
      ...database.env,
      PUBLIC_URL: 'https://news.example.test',
      MAIL_FROM: `Essays <essays@${DOMAIN}>`,
      PUBLISHER_TOKEN: 'a-token-of-at-least-16-characters',
      SMTP_URL: `smtp://essays:${encodeURIComponent(PASSWORD)}@127.0.0.1:${smtp.port}`,
      DKIM_DOMAIN: DOMAIN,
      DKIM_SELECTOR: SELECTOR,
      DKIM_PRIVATE_KEY_FILE: join(dir, 'dkim.pem'),
    };
  });
  beforeEach(() => {
    dns.silent = false;
    dns.records = new Map(Object.entries(goodZone()));
  });
  afterAll(async () => {
    await dns?.close();
    await smtp?.close();
    await database?.destroy();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const doctor = (args: string[], settings: Record<string, string>) =>
    // Only the settings given: nothing of this machine's environment leaks into the check.
    runCli(['doctor', ...args], { PATH: process.env.PATH ?? '', ...settings });

  it('passes a well set-up domain on every check and exits 0', async () => {
    const result = await doctor(['--dns', dns.address], env);
    expect(result.stderr).toBe('');
    const lines = result.stdout.split('\n');
    for (const name of ['configuration', 'PUBLIC_URL', 'MAIL_FROM', 'DKIM setup', 'alignment']) {
      expect(lines.find((l) => l.startsWith(`✓ ${name} `))).toBeDefined();
    }
    expect(lines.find((l) => l.startsWith('✓ database '))).toBeDefined();
    expect(lines.find((l) => l.startsWith('✓ SMTP '))).toMatch(/accepted the login of essays/);
    expect(lines.find((l) => l.startsWith('✓ SPF '))).toContain('v=spf1 ip4:127.0.0.1 -all');
    expect(result.stdout).toMatch(/^✓ DKIM +the key at oneletter\._domainkey\.example\.test matches/m);
    expect(lines.find((l) => l.startsWith('✓ DMARC '))).toContain('p=reject');
    expect(result.stdout).toContain('11 ok, 0 warnings, 0 failed, 0 skipped.');
    expect(result.stdout).not.toContain(PASSWORD);
    // Nothing is missing, so no records are printed unless asked for.
    expect(result.stdout).not.toContain('DNS records to publish');
    expect(result.code).toBe(0);
  });

  it('prints the DKIM record to publish with --records, and exits 1 when the published key is another', async () => {
    dns.records.set(KEY_NAME, [`v=DKIM1; k=rsa; p=${other.spki}`]);
    const result = await doctor(['--dns', dns.address, '--records'], env);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/^✗ DKIM .*not the one DKIM_PRIVATE_KEY signs with/m);
    expect(result.stdout).toContain(`${KEY_NAME}  TXT\n    v=DKIM1; k=rsa; p=${signing.spki}\n`);
    expect(result.stdout).toContain(`_dmarc.${DOMAIN}  TXT`);
  });

  it('shows the configuration error and exits 1 when the settings do not parse', async () => {
    const result = await doctor([], { ...env, SMTP_URL: 'http://mail.example.test', PORT: 'eighty' });
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/^✗ configuration/);
    expect(result.stdout).toContain('SMTP_URL="http://mail.example.test": expected smtp://');
    expect(result.stdout).toContain('PORT="eighty": expected a whole number');
    expect(result.stdout).toContain('0 ok, 0 warnings, 1 failed, 0 skipped.');
  });

  it('names an unreadable DKIM_PRIVATE_KEY_FILE as a configuration error', async () => {
    const report = await runDoctor({ ...env, DKIM_PRIVATE_KEY_FILE: join(dir, 'missing.pem') });
    expect(report.checks).toHaveLength(1);
    expect(report.checks[0]).toMatchObject({ name: 'configuration', verdict: 'fail' });
    expect(report.checks[0]?.detail).toContain('DKIM_PRIVATE_KEY_FILE');
  });

  it('skips the DNS checks rather than failing them when DNS does not answer', async () => {
    dns.silent = true;
    const report = await runDoctor(env, { resolver: resolverFor(dns, 300) });
    const byName = new Map(report.checks.map((c) => [c.name, c]));
    for (const name of ['SPF', 'DKIM', 'DMARC']) {
      expect(byName.get(name)?.verdict).toBe('skip');
      expect(byName.get(name)?.detail).toContain('DNS not reachable from here');
    }
    expect(report.checks.filter((c) => c.verdict === 'fail')).toEqual([]);
    // The record the operator needs most is still offered.
    expect(report.records.find((r) => r.name === KEY_NAME)).toMatchObject({ needed: true });
  });

  it('fails a DKIM key that does not load, and looks for no record of it', async () => {
    const broken = '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----';
    const { DKIM_PRIVATE_KEY_FILE: _, ...rest } = env;
    const report = await runDoctor({ ...rest, DKIM_PRIVATE_KEY: broken }, { resolver: resolverFor(dns) });
    const byName = new Map(report.checks.map((c) => [c.name, c]));
    expect(byName.get('DKIM setup')).toMatchObject({ verdict: 'fail' });
    expect(byName.get('DKIM setup')?.detail).toContain('not a usable private key');
    expect(byName.get('DKIM')).toMatchObject({ verdict: 'skip' });
    expect(report.records.map((r) => r.name)).not.toContain(KEY_NAME);
  });

  it('skips the DNS checks when no DNS server listens at all', async () => {
    const closed = new Resolver({ timeout: 300, tries: 1 });
    closed.setServers([`127.0.0.1:${await freePort()}`]);
    const check = await checkSpf(closed, DOMAIN);
    expect(check.verdict).toBe('skip');
  });

  it('says where letters go without SMTP_URL, and fails nothing for it', async () => {
    const { SMTP_URL: _, ...withoutSmtp } = env;
    const report = await runDoctor(withoutSmtp, { resolver: resolverFor(dns) });
    expect(report.checks.find((c) => c.name === 'SMTP')).toMatchObject({ verdict: 'skip' });
    expect(report.checks.find((c) => c.name === 'SMTP')?.detail).toContain('outbox');
    expect(report.checks.filter((c) => c.verdict === 'fail')).toEqual([]);
  });

  it('lists each configured bounce webhook with its address, and names a setting of the wrong shape', async () => {
    const hooks = {
      BOUNCE_WEBHOOK_SECRET: 'b'.repeat(40),
      RESEND_WEBHOOK_SECRET: `whsec_${Buffer.from('a secret of twenty-four b').toString('base64')}`,
    };
    const report = await runDoctor({ ...env, ...hooks }, { resolver: resolverFor(dns) });
    const byName = new Map(report.checks.map((c) => [c.name, c]));
    expect(byName.get('webhook webhook')).toMatchObject({ verdict: 'ok' });
    expect(byName.get('webhook webhook')?.detail).toContain('/webhooks/bounces');
    expect(byName.get('resend webhook')?.detail).toContain('/webhooks/resend');

    const bad = await runDoctor({ ...env, SENDGRID_WEBHOOK_PUBLIC_KEY: 'not a key' });
    expect(bad.checks[0]).toMatchObject({ name: 'configuration', verdict: 'fail' });
    expect(bad.checks[0]?.detail).toContain('SENDGRID_WEBHOOK_PUBLIC_KEY');
  });

  it('warns when letters go through Resend but its bounce reports are not received', async () => {
    const report = await runDoctor(
      { ...env, RESEND_API_KEY: 're_0123456789abcdef' },
      { resolver: resolverFor(dns) },
    );
    expect(report.checks.find((c) => c.name === 'resend webhook')).toMatchObject({ verdict: 'warn' });
  });
});

describe('the SMTP check', () => {
  let sink: SmtpSink;
  let plain: SmtpSink;
  let tls: SmtpSink;
  beforeAll(async () => {
    sink = await startSmtpSink({ auth: { user: 'essays', pass: PASSWORD } });
    plain = await startSmtpSink();
    tls = await startSmtpSink({ starttls: true, auth: { user: 'essays', pass: PASSWORD } });
  });
  afterAll(async () => {
    await Promise.all([sink?.close(), plain?.close(), tls?.close()]);
  });

  it('reports a refused login with the server reply, and never the password', async () => {
    const check = await checkSmtp(`smtp://essays:wrong-secret@127.0.0.1:${sink.port}`);
    expect(check.verdict).toBe('fail');
    expect(check.detail).toMatch(/authentication refused \(535 /);
    expect(check.detail).toContain('smtp://essays:***@127.0.0.1');
    expect(`${check.detail}${check.fix}`).not.toContain('wrong-secret');
  });

  it('reports a closed port as "cannot connect"', async () => {
    const check = await checkSmtp(`smtp://essays:pw@127.0.0.1:${await freePort()}`);
    expect(check).toMatchObject({ verdict: 'fail' });
    expect(check.detail).toMatch(/^cannot connect to 127\.0\.0\.1:\d+ \(.*ECONNREFUSED/);
    expect(check.fix).toContain('host and port');
  });

  it('reports a certificate the client refuses during STARTTLS as "TLS failed"', async () => {
    const check = await checkSmtp(`smtp://essays:${encodeURIComponent(PASSWORD)}@127.0.0.1:${tls.port}`);
    expect(check.verdict).toBe('fail');
    expect(check.detail).toMatch(/TLS failed .*certificate/);
  });

  it('reports smtps:// to a server that speaks plain SMTP as "TLS failed"', async () => {
    const check = await checkSmtp(`smtps://essays:pw@127.0.0.1:${plain.port}`, { timeoutMs: 3000 });
    expect(check.verdict).toBe('fail');
    expect(check.detail).toContain('TLS failed');
    expect(check.fix).toContain('smtps:// is TLS from the first byte');
  });

  it('fails credentials for a server that offers no AUTH', async () => {
    const check = await checkSmtp(`smtp://essays:pw@127.0.0.1:${plain.port}`);
    expect(check.verdict).toBe('fail');
    expect(check.detail).toContain('offers no AUTH');
  });

  it('accepts a server that takes mail without a login when SMTP_URL has none', async () => {
    const check = await checkSmtp(`smtp://127.0.0.1:${plain.port}`);
    expect(check.verdict).toBe('ok');
  });

  it('masks the password, and an address used as user name, in the URL it shows', () => {
    expect(maskedSmtpUrl('smtps://jane%40example.org:p%40ss@smtp.example.org:465')).toBe(
      'smtps://j***@example.org:***@smtp.example.org:465',
    );
    expect(maskedSmtpUrl('smtp://relay.example.org')).toBe('smtp://relay.example.org');
  });
});

describe('the DNS checks', () => {
  let dns: DnsServer;
  let resolver: Resolver;
  const dkim = { domain: DOMAIN, selector: SELECTOR, privateKey: signing.pem };
  beforeAll(async () => {
    dns = await startDnsServer();
    resolver = resolverFor(dns);
  });
  beforeEach(() => {
    dns.records = new Map(Object.entries(goodZone()));
  });
  afterAll(() => dns?.close());

  it('fails a domain without an SPF record, with the record to add', async () => {
    dns.records.set(DOMAIN, ['some-other=txt']);
    const check = await checkSpf(resolver, DOMAIN);
    expect(check).toMatchObject({ verdict: 'fail', detail: `${DOMAIN} has no SPF record` });
    expect(check.fix).toBe(`add TXT "v=spf1 include:<your SMTP provider> -all" at ${DOMAIN}`);
  });

  it('fails a domain that does not exist in DNS, and says the resolver may be the cause', async () => {
    const check = await checkSpf(resolver, 'nowhere.test');
    expect(check).toMatchObject({
      verdict: 'fail',
      detail: expect.stringContaining('does not exist in DNS'),
    });
    expect(check.fix).toContain('--dns');
  });

  it('fails two SPF records, which receivers treat as an error', async () => {
    dns.records.set(DOMAIN, ['v=spf1 include:a.example -all', 'v=spf1 include:b.example -all']);
    const check = await checkSpf(resolver, DOMAIN);
    expect(check.verdict).toBe('fail');
    expect(check.detail).toContain('2 SPF records');
    expect(check.fix).toContain('merge them into one');
  });

  it('warns about +all and ?all, and takes ~all', async () => {
    dns.records.set(DOMAIN, ['v=spf1 include:a.example +all']);
    expect(await checkSpf(resolver, DOMAIN)).toMatchObject({ verdict: 'warn' });
    dns.records.set(DOMAIN, ['v=spf1 include:a.example ?all']);
    expect(await checkSpf(resolver, DOMAIN)).toMatchObject({ verdict: 'warn' });
    dns.records.set(DOMAIN, ['v=spf1 include:a.example ~all']);
    expect(await checkSpf(resolver, DOMAIN)).toMatchObject({ verdict: 'ok' });
  });

  it('fails a DKIM key that is not the configured one, naming the record to publish', async () => {
    dns.records.set(KEY_NAME, [`v=DKIM1; k=rsa; p=${other.spki}`]);
    const check = await checkDkim(resolver, dkim);
    expect(check.verdict).toBe('fail');
    expect(check.detail).toContain('is not the one DKIM_PRIVATE_KEY signs with');
    expect(check.fix).toContain(`publish TXT "v=DKIM1; k=rsa; p=${signing.spki}" at ${KEY_NAME}`);
  });

  it('fails a missing DKIM record and a revoked one', async () => {
    dns.records.delete(KEY_NAME);
    expect(await checkDkim(resolver, dkim)).toMatchObject({
      verdict: 'fail',
      detail: `no DKIM key published at ${KEY_NAME}`,
    });
    dns.records.set(KEY_NAME, ['v=DKIM1; k=rsa; p=']);
    expect((await checkDkim(resolver, dkim)).detail).toContain('revoked');
  });

  it('recognises the configured key published as PKCS#1, or split with spaces by a DNS console', async () => {
    dns.records.set(KEY_NAME, [`v=DKIM1; p=${signing.pkcs1}`]);
    expect((await checkDkim(resolver, dkim)).verdict).toBe('ok');
    dns.records.set(KEY_NAME, [`v=DKIM1; k=rsa; p=${signing.spki.slice(0, 200)} ${signing.spki.slice(200)}`]);
    expect((await checkDkim(resolver, dkim)).verdict).toBe('ok');
  });

  it('prints a DKIM record that verifies the signatures the service makes', async () => {
    const record = dkimSuggestion(DOMAIN, SELECTOR, signing.pem);
    const sign = createDkimSigner(dkim);
    const email = await sign(
      await compose({
        from: `Essays <essays@${DOMAIN}>`,
        to: 'reader@example.org',
        subject: 'Signed',
        text: 'Hello',
        html: '<p>Hello</p>',
      }),
    );
    const dnsResolver = async (name: string, type: string) => {
      if (type === 'TXT' && name === record.name) return [[record.value]];
      throw Object.assign(new Error('no record'), { code: 'ENOTFOUND' });
    };
    const { results } = await dkimVerify(email.raw, { resolver: dnsResolver });
    expect((results as { status: { result: string } }[])[0]?.status.result).toBe('pass');
  });

  it('warns about p=none: monitoring only', async () => {
    dns.records.set(`_dmarc.${DOMAIN}`, [`v=DMARC1; p=none; rua=mailto:dmarc@${DOMAIN}`]);
    const check = await checkDmarc(resolver, DOMAIN);
    expect(check.verdict).toBe('warn');
    expect(check.detail).toContain('monitoring only');
    expect(check.detail).toContain(`aggregate reports go to mailto:dmarc@${DOMAIN}`);
  });

  it('takes quarantine, notes a missing rua, and fails a missing record with one to add', async () => {
    dns.records.set(`_dmarc.${DOMAIN}`, ['v=DMARC1; p=quarantine']);
    const check = await checkDmarc(resolver, DOMAIN);
    expect(check).toMatchObject({ verdict: 'ok' });
    expect(check.detail).toContain('no rua=');
    dns.records.delete(`_dmarc.${DOMAIN}`);
    const missing = await checkDmarc(resolver, DOMAIN);
    expect(missing.verdict).toBe('fail');
    expect(missing.fix).toBe(
      `add TXT "v=DMARC1; p=none; rua=mailto:dmarc-reports@${DOMAIN}" at _dmarc.${DOMAIN}`,
    );
  });

  it("finds a subdomain's DMARC policy at its organizational domain (sp= first)", async () => {
    dns.records.set(`_dmarc.${DOMAIN}`, ['v=DMARC1; p=none; sp=reject']);
    const check = await checkDmarc(resolver, `news.${DOMAIN}`);
    expect(check.verdict).toBe('ok');
    expect(check.detail).toContain(`p=reject (inherited from _dmarc.${DOMAIN})`);
  });
});

describe('the database check', () => {
  it('fails a PostgreSQL server that does not answer, without showing its password', async () => {
    const url = `postgres://oneletter:db-secret@127.0.0.1:${await freePort()}/oneletter`;
    const check = await checkDatabase({ databaseUrl: url, dataDir: './data' });
    expect(check.verdict).toBe('fail');
    expect(check.detail).toContain('PostgreSQL at 127.0.0.1:');
    expect(`${check.detail}${check.fix}`).not.toContain('db-secret');
  });

  it('leaves the embedded database closed and checks that its folder can be made', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'oneletter-doctor-db-'));
    try {
      const check = await checkDatabase({ dataDir: join(dir, 'data') });
      expect(check).toMatchObject({ verdict: 'ok' });
      expect(check.detail).toContain('created in');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('the DMARC check with strict alignment', () => {
  let dns: DnsServer;
  beforeAll(async () => {
    dns = await startDnsServer({ [`_dmarc.${DOMAIN}`]: ['v=DMARC1; p=reject; adkim=s'] });
  });
  afterAll(() => dns?.close());

  it('fails adkim=s when the signing domain is a subdomain, and takes the exact domain', async () => {
    const resolver = resolverFor(dns);
    const strict = await checkDmarc(resolver, DOMAIN, `mail.${DOMAIN}`);
    expect(strict.verdict).toBe('fail');
    expect(strict.fix).toContain(`DKIM_DOMAIN=${DOMAIN}`);
    expect((await checkDmarc(resolver, DOMAIN, DOMAIN)).verdict).toBe('ok');
  });
});

describe('the configuration check', () => {
  const base = {
    PUBLIC_URL: 'https://news.example.test',
    MAIL_FROM: 'essays@news.example.test',
    PUBLISHER_TOKEN: 'a-token-of-at-least-16-characters',
    DKIM_DOMAIN: DOMAIN,
    DKIM_SELECTOR: SELECTOR,
    DKIM_PRIVATE_KEY: signing.pem,
  };
  const byName = (env: Record<string, string | undefined>) =>
    new Map(checkConfiguration(env).checks.map((c) => [c.name, c]));

  it('accepts a DKIM domain that is the organizational domain of MAIL_FROM (relaxed alignment)', () => {
    expect(byName(base).get('alignment')?.verdict).toBe('ok');
  });

  it('fails a DKIM domain unrelated to MAIL_FROM, naming the domain to sign as', () => {
    const check = byName({ ...base, MAIL_FROM: 'essays@elsewhere.example' }).get('alignment');
    expect(check?.verdict).toBe('fail');
    expect(check?.fix).toContain('DKIM_DOMAIN=elsewhere.example');
  });

  it('fails the placeholder sender and a mailbox provider domain, warns about http, and says where the token is kept when none is set', () => {
    const checks = byName({ ...base, MAIL_FROM: undefined, PUBLIC_URL: 'http://news.example.test' });
    expect(checks.get('MAIL_FROM')?.verdict).toBe('fail');
    expect(checks.get('PUBLIC_URL')?.verdict).toBe('warn');
    expect(byName({ ...base, MAIL_FROM: 'me@gmail.com' }).get('MAIL_FROM')?.verdict).toBe('fail');
    const token = byName({ ...base, PUBLISHER_TOKEN: undefined, DATA_DIR: '/nonexistent/data' }).get(
      'PUBLISHER_TOKEN',
    );
    expect(token?.verdict).toBe('ok');
    expect(token?.detail).toContain('/nonexistent/data/publisher-token');
  });

  it('warns when DKIM is not configured, and about a 1024-bit key', () => {
    const { DKIM_DOMAIN: _d, DKIM_SELECTOR: _s, DKIM_PRIVATE_KEY: _k, ...unsigned } = base;
    expect(byName(unsigned).get('DKIM setup')?.verdict).toBe('warn');
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 })
      .privateKey.export({ type: 'pkcs8', format: 'pem' })
      .toString();
    expect(byName({ ...base, DKIM_PRIVATE_KEY: small }).get('DKIM setup')?.verdict).toBe('warn');
  });

  it('lays out one line per check, with the fix after a dash', () => {
    const text = formatReport({
      checks: [
        { name: 'SPF', verdict: 'fail', detail: 'example.test has no SPF record', fix: 'add TXT "v=spf1 …"' },
        { name: 'DMARC', verdict: 'ok', detail: 'p=reject' },
      ],
      records: [],
    });
    expect(text).toBe(
      '✗ SPF    example.test has no SPF record — add TXT "v=spf1 …"\n✓ DMARC  p=reject\n\n1 ok, 0 warnings, 1 failed, 0 skipped.\n',
    );
  });
});
