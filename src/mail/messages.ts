import { createHash } from 'node:crypto';
import type { Config } from '../config.js';
import type { OutgoingEmail } from './mailer.js';
import type { Renderer } from './render.js';

type MessageConfig = Pick<Config, 'mailFrom' | 'publicUrl' | 'siteName' | 'siteUrl' | 'confirmTokenTtlMs'>;

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

/** The email asking the owner of an address to confirm it. */
export async function confirmationEmail(
  config: MessageConfig,
  renderer: Renderer,
  to: { email: string; name: string | null },
  token: string,
): Promise<OutgoingEmail> {
  const rendered = await renderer.email('confirm', {
    site_name: config.siteName,
    site_url: config.siteUrl,
    name: to.name,
    confirm_url: `${config.publicUrl}/confirm/${token}`,
    confirm_hours: Math.round(config.confirmTokenTtlMs / 3_600_000),
  });
  return {
    from: config.mailFrom,
    to: to.email,
    ...rendered,
    headers: { 'Auto-Submitted': 'auto-generated' },
  };
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
): Promise<OutgoingEmail> {
  const domain = senderDomain(config.mailFrom);
  const unsubscribeUrl = `${config.publicUrl}/unsubscribe/${to.unsubscribeToken}`;
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
    messageId: `${essayMessageKey(essay.slug, to.id)}@${domain}`,
    headers: {
      'List-Id': `${listIdLabel(config.siteName)} <newsletter.${domain}>`,
      'List-Unsubscribe': `<${unsubscribeUrl}>`,
      'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
      Precedence: 'bulk',
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
