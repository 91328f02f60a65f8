import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
});
