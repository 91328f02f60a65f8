import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDbKind } from './support/db.js';
import { freePort } from './support/process.js';
import type { SnsFields, SnsFixture } from './support/sns.js';
import {
  notification,
  sesBounce,
  sign,
  startFakeSns,
  strangerKeyPem,
  subscriptionConfirmation,
} from './support/sns.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const WRANGLER = fileURLToPath(new URL('../node_modules/wrangler/bin/wrangler.js', import.meta.url));

// The SNS signature check inside a real workerd (`wrangler dev`): WebCrypto's SHA-1 and SHA-256 RSA
// verification and the certificate reader behave there as on Node. No database is involved, so it runs once,
// in the pglite project.
describe.skipIf(testDbKind !== 'pglite')('SNS signatures are checked the same on Cloudflare Workers', () => {
  let sns: SnsFixture;
  let wrangler: ChildProcess;
  let base: string;
  let stateDir: string;
  let output = '';

  beforeAll(async () => {
    sns = await startFakeSns();
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    stateDir = await mkdtemp(join(tmpdir(), 'oneletter-sns-worker-'));
    const args = [
      WRANGLER,
      'dev',
      'tests/support/sns-worker.ts',
      '--ip',
      '127.0.0.1',
      '--port',
      String(port),
    ];
    args.push('--persist-to', stateDir, '--inspector-port', String(await freePort()));
    // Its own process group: wrangler starts workerd and esbuild, and all of them must go at the end.
    wrangler = spawn(process.execPath, args, {
      cwd: ROOT,
      env: { ...process.env, CI: 'true', WRANGLER_SEND_METRICS: 'false' },
      detached: true,
    });
    wrangler.stdout?.on('data', (chunk) => {
      output += chunk;
    });
    wrangler.stderr?.on('data', (chunk) => {
      output += chunk;
    });
    const started = Date.now();
    for (;;) {
      const up = await fetch(base, { method: 'POST', body: '{"certificate":"","message":{}}' }).then(
        (r) => r.ok,
        () => false,
      );
      if (up) break;
      if (Date.now() - started > 90_000 || wrangler.exitCode !== null) {
        throw new Error(`wrangler dev did not start:\n${output}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }, 120_000);

  afterAll(async () => {
    const group = wrangler?.pid;
    if (group) {
      const kill = (signal: NodeJS.Signals) => {
        try {
          process.kill(-group, signal);
        } catch {}
      };
      kill('SIGTERM');
      await new Promise((resolve) => setTimeout(resolve, 1000));
      kill('SIGKILL');
    }
    await sns?.close();
    if (stateDir) await rm(stateDir, { recursive: true, force: true });
  });

  const check = async (message: SnsFields) => {
    const res = await fetch(base, {
      method: 'POST',
      body: JSON.stringify({ certificate: sns.certificatePem, message }),
    });
    return (await res.json()) as { verified: boolean; reason?: string };
  };

  it('verifies SignatureVersion 1 and 2 notifications and a subscription confirmation', async () => {
    expect(await check(sign(notification(sesBounce(['a@example.org'])), sns.privateKeyPem, '1'))).toEqual({
      verified: true,
    });
    expect(await check(sign(notification(sesBounce(['a@example.org'])), sns.privateKeyPem, '2'))).toEqual({
      verified: true,
    });
    expect(await check(sign(subscriptionConfirmation(), sns.privateKeyPem, '2'))).toEqual({ verified: true });
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
