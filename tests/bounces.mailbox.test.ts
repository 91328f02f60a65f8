import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MailboxDeps } from '../src/bounces/mailbox.js';
import { readBounceMailbox, startBounceMailbox } from '../src/bounces/mailbox.js';
import { parseConfig } from '../src/config.js';
import { runDoctor } from '../src/doctor/doctor.js';
import type { Logger } from '../src/log.js';
import { silentLogger } from '../src/log.js';
import type { TestMailbox } from './support/dovecot.js';
import { startTestMailbox } from './support/dovecot.js';
import { arfComplaint, postfixDsn } from './support/reports.js';
import { lettersPerAddress, seedSubscribers } from './support/sendout.js';
import type { TestService } from './support/service.js';
import { createTestService, PUBLISHER_TOKEN } from './support/service.js';
import type { ReceivedEmail } from './support/smtp.js';

/**
 * The bounce mailbox: letters go out with a VERP envelope sender (BOUNCE_ADDRESS), bounces and complaints
 * come back to it as reports in a real IMAP server (Dovecot), and the dispatcher's poll acts on the ones
 * that name a letter of ours, then deletes or moves them. Everything else stays in the mailbox as it was.
 */

const BOUNCE_ADDRESS = 'bounces@example.test';
const VERP = /^bounces\+[0-9a-f]{36}@example\.test$/;

let box: TestMailbox;
let s: TestService;

const reader = (name: string) => `${name}@example.org`;

beforeAll(async () => {
  box = await startTestMailbox();
  s = await createTestService({
    BOUNCE_ADDRESS,
    BOUNCE_MAILBOX_URL: box.url,
    SOFT_BOUNCE_LIMIT: '2',
  });
});

afterAll(async () => {
  await s?.close();
  await box?.close();
});

const deps = (env: Partial<MailboxDeps['config']> = {}): MailboxDeps => ({
  db: s.database.db,
  log: silentLogger,
  config: { ...s.config, bounceMailboxUrl: box.url, ...env },
});

async function publish(slug: string): Promise<Map<string, ReceivedEmail>> {
  const res = await s.publish({ slug, title: `Essay ${slug}`, url: `https://example.org/${slug}` });
  expect(res.status).toBe(202);
  await s.drain();
  const letters = new Map<string, ReceivedEmail>();
  for (const mail of s.smtp.received) {
    if (mail.parsed.subject === `Essay ${slug}`) letters.set(mail.to, mail);
  }
  return letters;
}

const detail = (email: string) => s.detail(email);

const history = async (email: string) =>
  (await detail(email)).history
    .filter((e) => e.source !== null)
    .map((e) => ({ kind: e.kind, source: e.source, essay: e.essay }));

/** A person's email to the mailbox, and a report that names no letter (a confirmation's bounce). */
const personal = [
  'From: Someone <someone@example.org>',
  `To: ${BOUNCE_ADDRESS}`,
  'Subject: about your newsletter',
  'Message-ID: <hello-1@example.org>',
  '',
  'Hello, is this address read by a person?',
  '',
].join('\r\n');

describe('reports in the bounce mailbox about letters the service sent', () => {
  let first: Map<string, ReceivedEmail>;
  const letter = (name: string) => {
    const found = first.get(reader(name));
    if (!found) throw new Error(`no letter to ${name}`);
    return found;
  };

  beforeAll(async () => {
    await seedSubscribers(
      s.database.db,
      'confirmed',
      ['gone', 'full', 'annoyed', 'annoyed-too', 'victim', 'fine'].map(reader),
    );
    first = await publish('first');
  });

  it('every letter has its own envelope sender: BOUNCE_ADDRESS with an opaque id', () => {
    const senders = [...first.values()].map((m) => m.from);
    expect(senders).toHaveLength(6);
    for (const sender of senders) expect(sender).toMatch(VERP);
    expect(new Set(senders).size).toBe(6);
    // The From header stays MAIL_FROM's.
    expect(letter('gone').parsed.from?.text).toContain('essays@example.test');
  });

  it('a permanent failure bounces the address, a delay counts as a soft bounce, a complaint unsubscribes', async () => {
    // Forged: the victim's id with one digit changed; and a report to the bare bounce address (no id).
    const victim = letter('victim');
    const forgedSender = victim.from.replace(/\+(.)/, (_, c: string) => `+${c === 'a' ? 'b' : 'a'}`);
    const forged = postfixDsn(victim, {
      action: 'failed',
      messageId: 'forged@mx.example.org',
      to: forgedSender,
    });
    const idless = postfixDsn(letter('fine'), {
      action: 'failed',
      messageId: 'idless@mx.example.org',
      to: BOUNCE_ADDRESS,
    });
    await box.deliver(personal);
    await box.deliver(forged);
    await box.deliver(idless);
    await box.deliver(postfixDsn(letter('gone'), { action: 'failed', messageId: 'gone-1@mx.example.org' }));
    // The same report twice (a server that delivered it again): one effect.
    await box.deliver(postfixDsn(letter('gone'), { action: 'failed', messageId: 'gone-1@mx.example.org' }));
    await box.deliver(postfixDsn(letter('full'), { action: 'delayed', messageId: 'full-1@mx.example.org' }));
    await box.deliver(
      arfComplaint(letter('annoyed'), {
        messageId: 'arf-1@mail.example.net',
        to: BOUNCE_ADDRESS,
        originalMailFrom: true,
      }),
    );
    // A feedback loop that sends only the letter as received: the id is in its Return-Path.
    await box.deliver(
      arfComplaint(letter('annoyed-too'), {
        messageId: 'arf-2@mail.example.net',
        to: BOUNCE_ADDRESS,
        originalMailFrom: false,
      }),
    );
    const untouched = { messages: await box.messages(), flags: await box.flags() };

    const poll = await readBounceMailbox(deps());
    expect(poll).toEqual({ handled: 4, duplicates: 1, leftAlone: 2 });

    expect((await detail(reader('gone'))).subscriber.status).toBe('bounced');
    expect(await history(reader('gone'))).toEqual([{ kind: 'bounced', source: 'mailbox', essay: 'first' }]);
    expect((await detail(reader('full'))).subscriber.status).toBe('confirmed');
    expect(await history(reader('full'))).toEqual([
      { kind: 'soft_bounced', source: 'mailbox', essay: 'first' },
    ]);
    for (const name of ['annoyed', 'annoyed-too']) {
      expect((await detail(reader(name))).subscriber.status).toBe('unsubscribed');
      expect(await history(reader(name))).toEqual([
        { kind: 'complained', source: 'mailbox', essay: 'first' },
      ]);
    }
    expect((await detail(reader('victim'))).subscriber.status).toBe('confirmed');
    expect(await history(reader('victim'))).toEqual([]);
    expect((await detail(reader('fine'))).subscriber.status).toBe('confirmed');

    // What was acted on is deleted; the person's email, the forged and the id-less reports are as they were.
    const left = await box.messages();
    expect(left).toHaveLength(3);
    expect(left).toEqual(untouched.messages.slice(0, 3));
    expect(await box.flags()).toEqual(untouched.flags.slice(0, 3));
    expect((await box.flags()).flat()).not.toContain('\\Seen');

    // Read again: nothing more happens, nothing more goes.
    expect(await readBounceMailbox(deps())).toEqual({ handled: 0, duplicates: 0, leftAlone: 2 });
    expect(await box.messages()).toHaveLength(3);
  });

  it('the same report delivered again later changes nothing more', async () => {
    await box.deliver(postfixDsn(letter('gone'), { action: 'failed', messageId: 'gone-1@mx.example.org' }));
    await box.deliver(postfixDsn(letter('full'), { action: 'delayed', messageId: 'full-1@mx.example.org' }));
    expect(await readBounceMailbox(deps())).toEqual({ handled: 0, duplicates: 2, leftAlone: 2 });
    expect(await history(reader('gone'))).toHaveLength(1);
    expect(await history(reader('full'))).toHaveLength(1);
    expect((await detail(reader('full'))).subscriber.status).toBe('confirmed');
    expect(await box.messages()).toHaveLength(3);
  });

  it('the next send-out skips the bounced and the complainers, and still mails the soft-bounced and the forged-for', async () => {
    const second = await publish('second');
    expect([...second.keys()].sort()).toEqual(['fine', 'full', 'victim'].map(reader));
  });

  it('a second letter soft-bounced (SOFT_BOUNCE_LIMIT=2) suppresses the address; moved to BOUNCE_MAILBOX_MOVE_TO', async () => {
    const second = [...s.smtp.received].filter((m) => m.parsed.subject === 'Essay second');
    const full = second.find((m) => m.to === reader('full'));
    if (!full) throw new Error('no second letter to full');
    const report = postfixDsn(full, { action: 'delayed', messageId: 'full-2@mx.example.org' });
    await box.deliver(report);

    const poll = await readBounceMailbox(deps({ bounceMailboxMoveTo: 'Processed' }));
    expect(poll).toEqual({ handled: 1, duplicates: 0, leftAlone: 2 });
    expect((await detail(reader('full'))).subscriber.status).toBe('bounced');
    expect((await history(reader('full'))).map((e) => e.kind)).toEqual([
      'soft_bounced',
      'soft_bounced',
      'bounced',
    ]);
    const moved = await box.messages('Processed');
    expect(moved).toHaveLength(1);
    expect(moved[0]).toContain('Message-Id: <full-2@mx.example.org>');
    expect(await box.messages()).toHaveLength(3);

    const third = await publish('third');
    expect([...third.keys()].sort()).toEqual(['fine', 'victim'].map(reader));
    expect(lettersPerAddress(s.smtp.received, 'Essay third').get(reader('full'))).toBeUndefined();
  });
});

describe('the poller the dispatcher process starts', () => {
  it('reads the mailbox at start, logs what it did without the password, and stops', async () => {
    const before = s.smtp.received.filter((m) => m.parsed.subject === 'Essay third');
    const letter = before.find((m) => m.to === reader('fine'));
    if (!letter) throw new Error('no third letter to fine');
    await box.deliver(postfixDsn(letter, { action: 'failed', messageId: 'fine-3@mx.example.org' }));
    const lines: string[] = [];
    const log: Logger = {
      info: (f) => lines.push(JSON.stringify(f)),
      warn: (f) => lines.push(JSON.stringify(f)),
      error: (f) => lines.push(JSON.stringify(f)),
    };
    const poller = startBounceMailbox({ ...deps(), log, intervalMs: 60_000 });
    for (let i = 0; i < 100 && !lines.some((l) => l.includes('bounce mailbox read')); i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await poller.stop();
    expect((await detail(reader('fine'))).subscriber.status).toBe('bounced');
    expect(lines.join('\n')).toContain('"handled":1');
    expect(lines.join('\n')).not.toContain(box.password);
    expect(lines.join('\n')).not.toContain(reader('fine'));
  });

  it('a mailbox that refuses the login logs one warning per failing streak, and changes nothing', async () => {
    const lines: string[] = [];
    const log: Logger = { info: () => {}, warn: (f) => lines.push(JSON.stringify(f)), error: () => {} };
    const wrong = box.url.replace(box.password, 'wrong-password');
    const poller = startBounceMailbox({ ...deps({ bounceMailboxUrl: wrong }), log, intervalMs: 10 });
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await poller.stop();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('bounce mailbox not read');
    expect(lines[0]).not.toContain('wrong-password');
  });
});

describe('the settings', () => {
  it('BOUNCE_MAILBOX_URL needs BOUNCE_ADDRESS, and a bad one is named without its password', () => {
    expect(() => parseConfig({ BOUNCE_MAILBOX_URL: box.url })).toThrow(
      /BOUNCE_MAILBOX_URL needs BOUNCE_ADDRESS/,
    );
    expect(() => parseConfig({ BOUNCE_ADDRESS, BOUNCE_MAILBOX_URL: 'pop3://u:secret@host/' })).toThrow(
      /BOUNCE_MAILBOX_URL="pop3:\/\/\*\*\*@host\/": expected imaps:/,
    );
    expect(() => parseConfig({ BOUNCE_ADDRESS: 'bounces+x@example.com' })).toThrow(/BOUNCE_ADDRESS/);
  });
});

describe('npm run doctor and the bounce mailbox', () => {
  const env = (url: string) => ({
    PUBLISHER_TOKEN,
    DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none',
    BOUNCE_ADDRESS,
    BOUNCE_MAILBOX_URL: url,
  });
  const mailboxCheck = async (url: string) =>
    (await runDoctor(env(url), { resolver: { resolveTxt: async () => [] } })).checks.find(
      (c) => c.name === 'Bounce mailbox',
    );

  it('logs in and says how many messages the folder holds', async () => {
    const check = await mailboxCheck(box.url);
    expect(check).toMatchObject({ verdict: 'ok' });
    expect(check?.detail).toContain(`imap://127.0.0.1:${box.port}/INBOX`);
    expect(check?.detail).not.toContain(box.password);
  });

  it('a wrong password fails, and says which setting to fix, without showing it', async () => {
    const check = await mailboxCheck(box.url.replace(box.password, 'wrong-password'));
    expect(check).toMatchObject({ verdict: 'fail', detail: expect.stringContaining('refused the login') });
    expect(check?.fix).toContain('BOUNCE_MAILBOX_URL');
    expect(JSON.stringify(check)).not.toContain('wrong-password');
  });
});
