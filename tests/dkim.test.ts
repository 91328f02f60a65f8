import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dkimVerify } from 'mailauth/lib/dkim/verify.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config.js';
import { createDkimSigner } from '../src/mail/dkim.js';
import { createOutboxMailer } from '../src/mail/outbox.js';
import { seedSubscribers } from './support/sendout.js';
import type { TestService } from './support/service.js';
import { confirmTokenIn, createTestService } from './support/service.js';

const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const dnsKey = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');

/** Verifies with mailauth (an independent implementation), resolving our selector's TXT record locally. */
async function verify(raw: string) {
  const resolver = async (name: string, type: string) => {
    if (type === 'TXT' && name === 'oneletter._domainkey.example.test')
      return [[`v=DKIM1; k=rsa; p=${dnsKey}`]];
    throw Object.assign(new Error(`no ${type} record for ${name}`), { code: 'ENOTFOUND' });
  };
  const { results } = await dkimVerify(Buffer.from(raw), { resolver });
  return results as {
    status: { result: string };
    signingDomain: string;
    signingHeaders?: { keys: string };
  }[];
}

describe('DKIM signing', () => {
  let s: TestService;
  beforeAll(async () => {
    s = await createTestService({
      DKIM_DOMAIN: 'example.test',
      DKIM_SELECTOR: 'oneletter',
      // As an operator pastes it into one line of an env file.
      DKIM_PRIVATE_KEY: pem.replace(/\n/g, '\\n'),
    });
  });
  afterAll(() => s?.close());

  it('signs the confirmation email and an essay letter, one-click headers included, and both verify', async () => {
    expect((await s.subscribeJson('signed@example.org')).status).toBe(202);
    await s.drain();
    const [confirmation] = await s.smtp.waitFor(1);
    const [first] = await verify(confirmation?.raw ?? '');
    expect(first?.status.result).toBe('pass');
    expect(first?.signingDomain).toBe('example.test');

    await s.app.request(`/confirm/${confirmTokenIn(confirmation?.parsed.text)}`, { method: 'POST' });
    await seedSubscribers(s.database.db, 'confirmed', ['second@example.org']);
    await s.publish({
      slug: 'signed',
      title: 'Signed, sealed',
      url: 'https://example.org/signed',
      summary: 'é',
    });
    await s.drain();
    const letters = (await s.smtp.waitFor(3)).slice(1);
    for (const letter of letters) {
      const [result] = await verify(letter.raw);
      expect(result?.status.result).toBe('pass');
      const signed = (result?.signingHeaders?.keys ?? '').toLowerCase().split(': ').join(':');
      for (const header of [
        'from',
        'subject',
        'date',
        'message-id',
        'list-id',
        'list-unsubscribe',
        'list-unsubscribe-post',
      ]) {
        expect(signed.split(':').map((h) => h.trim())).toContain(header);
      }
    }
  });

  it('a tampered letter no longer verifies', async () => {
    const letter = s.smtp.received.at(-1);
    const tampered = (letter?.raw ?? '').replace(
      /^List-Unsubscribe: <[^>]+>/m,
      'List-Unsubscribe: <https://evil.example/u>',
    );
    const [result] = await verify(tampered);
    expect(result?.status.result).not.toBe('pass');
  });

  it('signs the .eml files of the outbox too, so a signature can be checked before going live', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'oneletter-outbox-'));
    try {
      const sign = createDkimSigner({ domain: 'example.test', selector: 'oneletter', privateKey: pem });
      const outbox = createOutboxMailer({ dir, sign });
      const sent = await outbox.send({
        from: 'Essays <essays@example.test>',
        to: 'reader@example.org',
        subject: 'Signed in the outbox',
        text: 'Hello',
        html: '<p>Hello</p>',
        messageId: 'outbox-1@example.test',
      });
      expect(sent.status).toBe('sent');
      const [file] = await readdir(dir);
      const [result] = await verify(await readFile(join(dir, file ?? ''), 'utf8'));
      expect(result?.status.result).toBe('pass');
      await outbox.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses half a DKIM configuration, and a key that is not PEM', () => {
    expect(() => parseConfig({ DKIM_DOMAIN: 'example.test' })).toThrow(
      /DKIM_DOMAIN, DKIM_SELECTOR and DKIM_PRIVATE_KEY/,
    );
    expect(() =>
      parseConfig({ DKIM_DOMAIN: 'example.test', DKIM_SELECTOR: 's', DKIM_PRIVATE_KEY: 'not a key' }),
    ).toThrow(/DKIM_PRIVATE_KEY=\(hidden\): expected a PEM private key/);
  });
});
