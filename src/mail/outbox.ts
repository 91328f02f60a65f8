import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import type { DkimSigner } from './dkim.js';
import type { Mailer, OutgoingEmail, RawEmail, SendOutcome } from './mailer.js';
import { maskEmail } from './mailer.js';

export interface OutboxOptions {
  dir: string;
  log?: (line: Record<string, unknown>) => void;
  /** DKIM: the files are signed as SMTP would send them, so a signature can be checked before going live. */
  sign?: DkimSigner;
}

/**
 * Writes each email as an .eml file (CRLF line endings, as SMTP carries it) instead of sending it: the
 * zero-configuration mailer. Each is logged with its file and, for a confirmation, the link to follow.
 */
export function createOutboxMailer(options: OutboxOptions): Mailer {
  const transport = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'windows' });
  let made = false;
  return {
    description: `outbox folder ${options.dir} (.eml files; set SMTP_URL to send real email)`,
    concurrency: 4,
    async send(email: OutgoingEmail | RawEmail): Promise<SendOutcome> {
      if (!made) {
        await mkdir(options.dir, { recursive: true });
        made = true;
      }
      const composed =
        'raw' in email
          ? email.raw
          : ((
              await transport.sendMail({
                ...withoutLink(email),
                messageId: email.messageId && `<${email.messageId}>`,
              })
            ).message as Buffer);
      const raw = options.sign
        ? (await options.sign({ envelope: { from: '', to: '' }, raw: composed, subject: email.subject })).raw
        : composed;
      const id = createHash('sha256')
        .update(email.messageId ?? raw)
        .digest('hex')
        .slice(0, 16);
      const file = join(options.dir, `${new Date().toISOString().replace(/[:.]/g, '-')}-${id}.eml`);
      await writeFile(file, raw);
      options.log?.({
        msg: 'email written to outbox',
        file,
        to: maskEmail('raw' in email ? email.envelope.to : email.to),
        subject: email.subject,
        ...('link' in email && email.link ? { link: email.link } : {}),
      });
      return { status: 'sent' };
    },
    async close() {
      transport.close();
    },
  };
}

/** The email as nodemailer takes it: the link is for the log only. */
function withoutLink({ link: _link, ...email }: OutgoingEmail): OutgoingEmail {
  return email;
}
