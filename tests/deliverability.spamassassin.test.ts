import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDbKind } from './support/db.js';
import type { TestService } from './support/service.js';
import { confirmTokenIn, createTestService } from './support/service.js';

const SPAMASSASSIN = '/usr/bin/spamassassin';

/** Scores a raw email with SpamAssassin's local tests only (-L: no DNS or network rules). */
function score(raw: string): Promise<{ score: number; report: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile(SPAMASSASSIN, ['-L', '-t'], { maxBuffer: 10 * 1024 * 1024 }, (error, stdout) => {
      if (error && !stdout) return reject(error);
      const match = /^X-Spam-Status: \w+, score=(-?[\d.]+)/m.exec(stdout);
      if (!match?.[1])
        return reject(new Error(`no X-Spam-Status in SpamAssassin's output:\n${stdout.slice(0, 2000)}`));
      const report = stdout.slice(stdout.indexOf('Content analysis details'));
      resolve({ score: Number(match[1]), report });
    });
    child.stdin?.end(raw);
  });
}

// The database is not what this checks: one run (the PGlite project) is enough.
describe.skipIf(testDbKind !== 'pglite')(
  'what spam filters think of our emails (SpamAssassin, local rules)',
  () => {
    let s: TestService;
    beforeAll(async () => {
      if (!existsSync(SPAMASSASSIN)) {
        throw new Error('SpamAssassin is missing: apt-get install -y spamassassin (.ci/run installs it).');
      }
      s = await createTestService({ CONFIRM_RESEND_MINUTES: '0' });
    });
    afterAll(() => s?.close());

    it('scores the confirmation email and an essay letter below 1.0 (5.0 is spam)', async () => {
      await s.subscribeJson('reader@example.org', 'Ann');
      await s.drain();
      const [confirmation] = await s.smtp.waitFor(1);
      await s.app.request(`/confirm/${confirmTokenIn(confirmation?.parsed.text)}`, { method: 'POST' });
      await s.publish({
        slug: 'on-walking',
        title: 'On walking',
        url: 'https://example.org/essays/on-walking',
        summary: 'Why the slow way round is the better one.',
      });
      await s.drain();
      const [, letter] = await s.smtp.waitFor(2);

      for (const [name, mail] of [
        ['confirmation', confirmation],
        ['essay letter', letter],
      ] as const) {
        const { score: points, report } = await score(mail?.raw ?? '');
        // The rules that fire, so a template change that hurts deliverability shows why.
        console.log(`SpamAssassin, ${name}: ${points}\n${report}`);
        expect(points, `${name}: ${report}`).toBeLessThan(1.0);
      }
    });
  },
);
