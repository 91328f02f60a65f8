import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config.js';
import { confirmationEmail, essayLetters } from '../src/mail/messages.js';
import { createOutboxMailer } from '../src/mail/outbox.js';
import { createRenderer } from '../src/mail/render.js';
import { loadTemplates } from '../src/mail/templates-fs.js';

/** Issue 23: the outbox (no SMTP_URL) as a newcomer meets it. */
describe('the .eml outbox', () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("logs each email with its file and the link it carries (a confirmation's, a letter's unsubscribe); every file uses CRLF", async () => {
    dir = await mkdtemp(join(tmpdir(), 'oneletter-outbox-'));
    const lines: Record<string, unknown>[] = [];
    const outbox = createOutboxMailer({ dir, log: (line) => lines.push(line) });
    const config = parseConfig({
      PUBLIC_URL: 'http://localhost:8787',
      PUBLISHER_TOKEN: 'a-token-of-16-chars+',
    });
    const renderer = createRenderer(loadTemplates());
    const token = 'a-confirmation-token-of-some-length';
    const confirmation = await confirmationEmail(
      config,
      renderer,
      { email: 'ann@example.org', name: 'Ann' },
      token,
    );
    expect((await outbox.send(confirmation)).status).toBe('sent');
    expect(
      (
        await outbox.send({
          from: config.mailFrom,
          to: 'bo@example.org',
          subject: 'Plain',
          text: 'a\nb',
          html: '<p>a</p>',
        })
      ).status,
    ).toBe('sent');
    const letter = await essayLetters(config, renderer, {
      id: 1,
      slug: 'on-walking',
      title: 'On walking',
      url: 'https://example.org/on-walking',
      summary: null,
    }).to({
      id: 7,
      email: 'cy@example.org',
      name: null,
      unsubscribeToken: 'an-unsubscribe-token-of-some-length',
    });
    expect((await outbox.send(letter)).status).toBe('sent');
    await outbox.close();

    const files = (await readdir(dir)).sort();
    expect(files).toHaveLength(3);
    expect(lines.map((l) => l.file)).toEqual(
      expect.arrayContaining(files.map((f) => join(dir as string, f))),
    );
    const logged = lines.find((l) => l.subject === confirmation.subject);
    expect(logged?.link).toBe(`http://localhost:8787/confirm/${token}`);
    expect(lines.find((l) => l.subject === 'Plain')).not.toHaveProperty('link');
    // The walkthrough's last step, one-click unsubscribe, takes the link from here: in the .eml, quoted-printable
    // folds it in the body (the List-Unsubscribe header has it whole).
    expect(lines.find((l) => l.subject === letter.subject)?.link).toBe(
      'http://localhost:8787/unsubscribe/an-unsubscribe-token-of-some-length',
    );
    for (const file of files) {
      const raw = await readFile(join(dir, file), 'latin1');
      expect(raw.match(/\r\n/g)?.length ?? 0, file).toBeGreaterThan(10);
      expect(raw.match(/(?<!\r)\n/g), `${file}: bare LF`).toBeNull();
      // The link is for the log: no header of the email carries it.
      expect(raw).not.toMatch(/^link:/im);
    }
  });
});
