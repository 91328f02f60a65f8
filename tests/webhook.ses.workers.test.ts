import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDbKind } from './support/db.js';
import type { SnsFields, SnsFixture } from './support/sns.js';
import {
  notification,
  sesBounce,
  sign,
  startFakeSns,
  strangerKeyPem,
  subscriptionConfirmation,
} from './support/sns.js';
import type { WranglerDev } from './support/wrangler.js';
import { startWrangler } from './support/wrangler.js';

// The SNS signature check inside a real workerd (`wrangler dev`): WebCrypto's SHA-1 and SHA-256 RSA
// verification and the certificate reader behave there as on Node. No database is involved, so it runs once,
// in the pglite project.
describe.skipIf(testDbKind !== 'pglite')('SNS signatures are checked the same on Cloudflare Workers', () => {
  let sns: SnsFixture;
  let wrangler: WranglerDev | undefined;
  let base: string;

  beforeAll(async () => {
    sns = await startFakeSns();
    wrangler = await startWrangler({
      script: 'tests/support/sns-worker.ts',
      ready: async (address) =>
        (await fetch(address, { method: 'POST', body: '{"certificate":"","message":{}}' })).ok,
    });
    base = wrangler.base;
  }, 120_000);

  afterAll(async () => {
    await wrangler?.stop();
    await sns?.close();
  });

  const check = async (message: SnsFields) => {
    const res = await fetch(base, {
      method: 'POST',
      body: JSON.stringify({ certificate: sns.certificatePem, message }),
    });
    return (await res.json()) as { verified: boolean; reason?: string; certificateFetches: number };
  };

  it('verifies SignatureVersion 1 and 2 notifications and a subscription confirmation', async () => {
    expect(
      await check(sign(notification(sesBounce(['a@example.org'])), sns.privateKeyPem, '1')),
    ).toMatchObject({
      verified: true,
    });
    expect(
      await check(sign(notification(sesBounce(['a@example.org'])), sns.privateKeyPem, '2')),
    ).toMatchObject({
      verified: true,
    });
    expect(await check(sign(subscriptionConfirmation(), sns.privateKeyPem, '2'))).toMatchObject({
      verified: true,
    });
  });

  it('fetches the certificate once for messages in separate requests, each with its own verifier', async () => {
    const first = await check(sign(notification(sesBounce(['b@example.org'])), sns.privateKeyPem, '2'));
    const second = await check(sign(notification(sesBounce(['c@example.org'])), sns.privateKeyPem, '1'));
    expect(first).toMatchObject({ verified: true });
    expect(second).toMatchObject({ verified: true });
    expect(first.certificateFetches).toBe(1);
    expect(second.certificateFetches).toBe(1);
  });

  it('refuses a tampered message and one signed with another key', async () => {
    const tampered = sign(notification(sesBounce(['a@example.org'])), sns.privateKeyPem, '1');
    tampered.Message = JSON.stringify(sesBounce(['b@example.org']));
    expect(await check(tampered)).toMatchObject({
      verified: false,
      reason: expect.stringMatching(/signature/),
    });
    const stranger = sign(notification(sesBounce(['a@example.org'])), strangerKeyPem(), '2');
    expect(await check(stranger)).toMatchObject({ verified: false });
  });
});
