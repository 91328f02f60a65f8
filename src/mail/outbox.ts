import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import LeWindows from 'nodemailer/lib/mime-node/le-windows';
import type { DkimSigner } from './dkim.js';
import type { Mailer, OutgoingEmail, RawEmail, SendOutcome } from './mailer.js';
import { maskEmail } from './mailer.js';
import { compose } from './smtp.js';

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
  let made = false;
  return {
    description: `outbox folder ${options.dir} (.eml files; set SMTP_URL to send real email)`,
    concurrency: 4,
    async send(email: OutgoingEmail | RawEmail): Promise<SendOutcome> {
      if (!made) {
        await mkdir(options.dir, { recursive: true });
        made = true;
      }
      // Composed as SMTP would send it: the composer leaves the text's own LFs, which SMTP's DATA turns into
      // CRLF on the wire; here nodemailer's LeWindows stream does.
      const composed =
        'raw' in email
          ? email.raw
          : await buffer(Readable.from([(await compose(withoutLink(email))).raw]).pipe(new LeWindows()));
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
        ...(email.link ? { link: email.link } : {}),
      });
      return { status: 'sent' };
    },
    async close() {},
  };
}

/** The email as the composer takes it: the link is for the log only. */
function withoutLink({ link: _link, ...email }: OutgoingEmail): OutgoingEmail {
  return email;
}

/** One email of the outbox as the dashboard lists it. */
export interface OutboxEntry {
  /** The file's name in the outbox folder. */
  name: string;
  date: string;
  to: string;
  subject: string;
}

/** One email of the outbox, to read: its text part, and the links in it (a confirmation's to follow). */
export interface OutboxEmail extends OutboxEntry {
  from: string;
  text: string;
  links: string[];
}

/** The outbox read back, newest first: the dashboard shows it when emails go to files, not to a server. */
export interface OutboxView {
  dir: string;
  list(limit: number): Promise<{ emails: OutboxEntry[]; total: number }>;
  read(name: string): Promise<OutboxEmail | undefined>;
}

/** File names the outbox writes (a timestamp and a hash): nothing else is read, no path ever followed. */
const EML_NAME = /^[\w.-]+\.eml$/;

export function createOutboxView(dir: string): OutboxView {
  async function parse(name: string) {
    const { default: PostalMime } = await import('postal-mime');
    const raw = await readFile(join(dir, name));
    return PostalMime.parse(raw);
  }
  const addresses = (list: { address?: string; name?: string }[] | undefined) =>
    (list ?? []).map((a) => a.address ?? a.name ?? '').join(', ');
  async function entry(name: string): Promise<OutboxEntry & { parsed: Awaited<ReturnType<typeof parse>> }> {
    const parsed = await parse(name);
    return { name, date: parsed.date ?? '', to: addresses(parsed.to), subject: parsed.subject ?? '', parsed };
  }
  return {
    dir,
    async list(limit) {
      const names = await readdir(dir).catch((error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT') return [] as string[];
        throw error;
      });
      // Names start with the time they were written: newest first is the reverse of their order.
      const emls = names
        .filter((n) => EML_NAME.test(n))
        .sort()
        .reverse();
      const shown = await Promise.all(emls.slice(0, limit).map(entry));
      return { emails: shown.map(({ parsed: _parsed, ...e }) => e), total: emls.length };
    },
    async read(name) {
      if (!EML_NAME.test(name)) return undefined;
      const found = await entry(name).catch((error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT') return undefined;
        throw error;
      });
      if (!found) return undefined;
      const { parsed, ...rest } = found;
      const text = parsed.text ?? '';
      return {
        ...rest,
        from: addresses(parsed.from ? [parsed.from as { address?: string }] : []),
        text,
        links: [...new Set(text.match(/https?:\/\/[^\s<>"]+/g) ?? [])],
      };
    },
  };
}
