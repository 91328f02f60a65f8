import { createHash } from 'node:crypto';
import type { Config } from '../config.js';
import type { OutgoingEmail, RawEmail } from './mailer.js';
import type { LetterTemplate } from './mime.js';
import { compileLetter, marker } from './mime.js';
import type { Renderer } from './render.js';
import { createVerp } from './verp.js';

export type MessageConfig = Pick<
  Config,
  'mailFrom' | 'publicUrl' | 'siteName' | 'siteUrl' | 'confirmTokenTtlMs'
> &
  /** VERP envelope senders (BOUNCE_ADDRESS), their ids keyed with the publisher token. */
  Partial<Pick<Config, 'bounceAddress' | 'publisherToken'>>;

/** The domain of the sender address: Message-IDs and List-Id live under it. */
export function senderDomain(mailFrom: string): string {
  const match = /@([^>\s]+)>?\s*$/.exec(mailFrom);
  return match?.[1]?.toLowerCase() ?? 'localhost';
}

/**
 * The left part of an essay letter's Message-ID: the same for the same essay and subscriber (a resend is the
 * same message to the receiving side), and opaque (no list size or slug oddities in a header).
 */
export function essayMessageKey(slug: string, subscriberId: number): string {
  return `essay.${createHash('sha256').update(`${slug}\n${subscriberId}`).digest('hex').slice(0, 32)}`;
}

/** A letter's one-click unsubscribe link: in its body, its List-Unsubscribe header and the outbox's log. */
const unsubscribeLink = (config: MessageConfig, token: string) => `${config.publicUrl}/unsubscribe/${token}`;

/** The email asking the owner of an address to confirm it. */
export async function confirmationEmail(
  config: MessageConfig,
  renderer: Renderer,
  to: { email: string; name: string | null },
  token: string,
): Promise<OutgoingEmail> {
  const link = `${config.publicUrl}/confirm/${token}`;
  const rendered = await renderer.email('confirm', {
    site_name: config.siteName,
    site_url: config.siteUrl,
    name: to.name,
    confirm_url: link,
    confirm_hours: Math.round(config.confirmTokenTtlMs / 3_600_000),
  });
  return {
    from: config.mailFrom,
    to: to.email,
    ...rendered,
    headers: { 'Auto-Submitted': 'auto-generated' },
    link,
  };
}

/** A test of a letter (sent from the dashboard before publishing): said in its subject and in a header. */
export const TEST_SUBJECT_PREFIX = '[Test] ';
export const TEST_HEADER = 'X-Oneletter-Test';
const TEST_HEADER_VALUE =
  'a test of this letter, sent from the dashboard before publishing; not part of a send-out';

export interface LetterOptions {
  /**
   * A test of the letter: the same letter, with "[Test] " before its subject, the X-Oneletter-Test header,
   * and a Message-ID of its own (a receiving server must not take the real letter for a copy of the test).
   */
  test?: boolean;
}

/** The Message-ID of a letter: made of the essay and the subscriber, or random for a test. */
function letterMessageId(slug: string, subscriberId: number, domain: string, options: LetterOptions): string {
  if (options.test) {
    const random = Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) =>
      b.toString(16).padStart(2, '0'),
    ).join('');
    return `test.${random}@${domain}`;
  }
  return `${essayMessageKey(slug, subscriberId)}@${domain}`;
}

function testMarks(options: LetterOptions): Record<string, string> {
  return options.test ? { [TEST_HEADER]: TEST_HEADER_VALUE } : {};
}

export interface EssayForEmail {
  id: number;
  slug: string;
  title: string;
  url: string;
  summary: string | null;
}

/**
 * The letter about one essay to one subscriber, with one-click unsubscribe headers (RFC 2369, RFC 8058)
 * and a Message-ID made of the essay and the subscriber: a resend would be the same message.
 */
export async function essayEmail(
  config: MessageConfig,
  renderer: Renderer,
  essay: EssayForEmail,
  to: { id: number; email: string; name: string | null; unsubscribeToken: string },
  options: LetterOptions = {},
): Promise<OutgoingEmail> {
  const domain = senderDomain(config.mailFrom);
  const unsubscribeUrl = unsubscribeLink(config, to.unsubscribeToken);
  const rendered = await renderer.email('essay', {
    site_name: config.siteName,
    site_url: config.siteUrl,
    name: to.name,
    essay: { title: essay.title, url: essay.url, summary: essay.summary, slug: essay.slug },
    unsubscribe_url: unsubscribeUrl,
  });
  return {
    from: config.mailFrom,
    to: to.email,
    ...rendered,
    subject: options.test ? `${TEST_SUBJECT_PREFIX}${rendered.subject}` : rendered.subject,
    messageId: letterMessageId(essay.slug, to.id, domain, options),
    headers: {
      'List-Id': `${listIdLabel(config.siteName)} <newsletter.${domain}>`,
      'List-Unsubscribe': `<${unsubscribeUrl}>`,
      'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
      Precedence: 'bulk',
      ...testMarks(options),
    },
  };
}

export interface EssayRecipient {
  id: number;
  email: string;
  name: string | null;
  unsubscribeToken: string;
}

/** Builds one essay's letters: the same as essayEmail() makes, assembled from templates rendered once. */
export interface EssayLetters {
  /** The letter as raw MIME, for transports that send messages as they are (SMTP, the outbox). */
  to(recipient: EssayRecipient): Promise<RawEmail>;
  /** The letter as fields, for transports that compose it themselves (an HTTP email API). */
  email(recipient: EssayRecipient): Promise<OutgoingEmail>;
}

/**
 * The letters of one send-out. The templates are rendered once with markers where the unsubscribe link
 * and the name go, twice at most (with and without a name, for `{% if name %}`). A template that changes
 * the name in a way a marker can't follow (a filter on it) is rendered per named subscriber instead.
 * With BOUNCE_ADDRESS, each raw letter's envelope sender names its delivery (mail/verp.ts).
 */
export function essayLetters(
  config: MessageConfig,
  renderer: Renderer,
  essay: EssayForEmail,
  options: LetterOptions = {},
): EssayLetters {
  // Made per send-out, not at load: Workers forbid random values in global scope.
  const TOKEN = marker('token');
  const NAME = marker('name');
  const domain = senderDomain(config.mailFrom);
  const verp =
    config.bounceAddress && config.publisherToken
      ? createVerp(config.bounceAddress, config.publisherToken)
      : undefined;
  const fixedHeaders = {
    'List-Id': `${listIdLabel(config.siteName)} <newsletter.${domain}>`,
    'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
    Precedence: 'bulk',
    ...testMarks(options),
  };
  const render = async (name: string | null) => {
    const rendered = await renderer.email('essay', {
      site_name: config.siteName,
      site_url: config.siteUrl,
      name,
      essay: { title: essay.title, url: essay.url, summary: essay.summary, slug: essay.slug },
      unsubscribe_url: unsubscribeLink(config, TOKEN),
    });
    return options.test ? { ...rendered, subject: `${TEST_SUBJECT_PREFIX}${rendered.subject}` } : rendered;
  };
  const compile = (rendered: Awaited<ReturnType<typeof render>>) =>
    compileLetter(config.mailFrom, rendered, fixedHeaders, [TOKEN, NAME]);
  const same = (a: Awaited<ReturnType<typeof render>>, b: typeof a) =>
    a.subject === b.subject && a.text === b.text && a.html === b.html;

  let templates: Promise<{ nameless: LetterTemplate; named: LetterTemplate | 'per-letter' }> | undefined;
  const prepare = async () => {
    const [nameless, named] = await Promise.all([render(null), render(NAME)]);
    const nameSeen = [named.subject, named.text, named.html].some((part) => part.includes(NAME));
    const compiled = compile(nameless);
    if (same(nameless, named)) return { nameless: compiled, named: compiled };
    return { nameless: compiled, named: nameSeen ? compile(named) : ('per-letter' as const) };
  };

  return {
    email: (recipient) => essayEmail(config, renderer, essay, recipient, options),
    async to(recipient) {
      templates ??= prepare();
      const { nameless, named } = await templates;
      const template = !recipient.name
        ? nameless
        : named === 'per-letter'
          ? compile(await render(recipient.name))
          : named;
      const values = new Map([[TOKEN, recipient.unsubscribeToken]]);
      if (recipient.name) values.set(NAME, recipient.name);
      const unsubscribeUrl = unsubscribeLink(config, recipient.unsubscribeToken);
      const letter = template.build({
        to: recipient.email,
        messageId: letterMessageId(essay.slug, recipient.id, domain, options),
        headers: { 'List-Unsubscribe': `<${unsubscribeUrl}>` },
        values,
      });
      letter.link = unsubscribeUrl;
      if (verp) letter.envelope.from = verp.address({ essayId: essay.id, subscriberId: recipient.id });
      return letter;
    },
  };
}

/**
 * The phrase of a List-Id header: plain words (RFC 5322 atoms) only. A quote, `=?` or non-ASCII would make
 * nodemailer encode the whole header as one encoded-word, and clients would no longer see a List-Id.
 */
function listIdLabel(siteName: string): string {
  return (
    siteName
      .replace(/[^A-Za-z0-9!#$%&'*+/^_`{|}~-]+/g, ' ')
      .replace(/\s+/g, ' ')
      .trim() || 'Newsletter'
  );
}
