import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RawEmail } from '../src/mail/mailer.js';
import { compileLetter, marker } from '../src/mail/mime.js';
import { createSmtpMailer } from '../src/mail/smtp.js';
import type { SmtpSink } from './support/smtp.js';
import { startSmtpSink } from './support/smtp.js';

// src/mail/smtp.ts corks nodemailer's private socket so that a letter's body and its final dot leave in one
// write (~10 % of the dispatcher's CPU per message). Nothing breaks without it, so an upgrade of nodemailer
// that moved the socket would lose the speed silently: this test makes it loud instead.
describe('the SMTP transport', () => {
  let sink: SmtpSink;
  beforeAll(async () => {
    sink = await startSmtpSink();
  });
  afterAll(() => sink?.close());

  it('finds nodemailer’s socket where the one-write send looks for it', async () => {
    const connection = new SMTPConnection({ host: '127.0.0.1', port: sink.port });
    await new Promise<void>((resolve, reject) => {
      connection.once('error', reject);
      connection.connect(() => resolve());
    });
    const socket = (connection as unknown as { _socket?: { cork?: unknown; uncork?: unknown } })._socket;
    expect(typeof socket?.cork).toBe('function');
    expect(typeof socket?.uncork).toBe('function');
    connection.quit();
  });

  // A letter goes to the socket as DATA carries it (dots doubled by src/mail/smtp.ts, not nodemailer's
  // stream), so what the server takes must be exactly what was written: a dot lost or doubled, a line end
  // changed or an extra blank line at the end would all show here.
  it('delivers each message byte for byte, whatever dots start its lines and however it ends', async () => {
    const bodies = [
      'Subject: plain\r\n\r\nOne line.\r\nAnother.\r\n',
      'Subject: dots\r\n\r\n.starts with a dot\r\n..two dots\r\n.\r\nmiddle . dot\r\n...\r\n',
      '.Subject: a dot before everything\r\n\r\nbody\r\n',
      'Subject: no final line end\r\n\r\nbody ends here.',
      'Subject: ends in a dot line\r\n\r\nbody\r\n.',
      // Bare line ends: nodemailer's stream makes them CRLF, as before.
      'Subject: bare LF\n\n.dot after a bare LF\nend\n',
    ];
    const mailer = createSmtpMailer({ url: sink.url, connections: 1 });
    try {
      for (const [i, body] of bodies.entries()) {
        const email: RawEmail = {
          envelope: { from: 'essays@example.org', to: `wire-${i}@example.org` },
          raw: Buffer.from(body),
          subject: `wire ${i}`,
        };
        expect(await mailer.send(email)).toEqual({ status: 'sent' });
      }
    } finally {
      await mailer.close();
    }
    for (const [i, body] of bodies.entries()) {
      const [got] = sink.to(`wire-${i}@example.org`);
      const expected = body.replace(/\r?\n/g, '\r\n');
      expect(got?.raw.replace(/\r\n$/, ''), `message ${i}`).toBe(expected.replace(/\r\n$/, ''));
    }
  });

  // A dot at a line start, in the template's fixed text or in what a letter puts in place, is doubled on the
  // wire and undone by the server: every letter must arrive as it was built.
  it('sends a compiled letter as built, whether or not a line of it starts with a dot', async () => {
    const token = marker('token');
    const cases = [
      { name: 'clean', text: `Hello.\nUnsubscribe: ${token}\nBye.`, value: 'abc' },
      { name: 'fixed-dot', text: `.A line that starts with a dot\n${token}`, value: 'abc' },
      { name: 'varying-dot', text: `Hello.\n${token}\nBye.`, value: '.abc' },
    ];
    const mailer = createSmtpMailer({ url: sink.url, connections: 1 });
    const built: string[] = [];
    try {
      for (const c of cases) {
        const rendered = { subject: c.name, text: c.text, html: `<p>${token}</p>` };
        const letter = compileLetter('Essays <essays@example.org>', rendered, {}, [token]).build({
          to: `${c.name}@example.org`,
          messageId: `${c.name}@example.org`,
          headers: {},
          values: new Map([[token, c.value]]),
        });
        built.push(letter.raw.toString());
        expect(await mailer.send(letter)).toEqual({ status: 'sent' });
      }
    } finally {
      await mailer.close();
    }
    for (const [i, c] of cases.entries()) {
      const [got] = sink.to(`${c.name}@example.org`);
      expect(got?.raw.replace(/\r\n$/, ''), c.name).toBe(built[i]?.replace(/\r\n$/, ''));
      expect(got?.parsed.text, c.name).toContain(c.value);
    }
  });
});
