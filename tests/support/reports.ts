import type { ReceivedEmail } from './smtp.js';

/**
 * Reports as receiving mail servers write them, about a letter the service really sent: a Postfix delivery
 * status notification (RFC 3464) and an abuse feedback report (ARF, RFC 5965), each sent to the letter's
 * envelope sender, as they reach the bounce mailbox.
 */

const CRLF = '\r\n';
const lines = (...l: string[]) => l.join(CRLF);

/** The header block of a raw message. */
function headersOf(raw: string): string {
  return raw.split(/\r?\n\r?\n/, 1)[0] ?? '';
}

export interface DsnOptions {
  /** `failed` with 5.1.1 (a permanent failure) or `delayed` with 4.2.2 (mailbox full, still retrying). */
  action: 'failed' | 'delayed';
  /** The report's Message-ID (the same report delivered twice has the same one). */
  messageId: string;
  /** The address the report goes to; by default the letter's envelope sender. */
  to?: string;
}

/** A Postfix bounce (or delay warning) of `letter`, with the letter's headers returned. */
export function postfixDsn(letter: ReceivedEmail, options: DsnOptions): string {
  const to = options.to ?? letter.from;
  const failed = options.action === 'failed';
  const status = failed ? '5.1.1' : '4.2.2';
  const diagnostic = failed
    ? `smtp; 550 5.1.1 <${letter.to}>: Recipient address rejected: User unknown in virtual mailbox table`
    : `smtp; 452 4.2.2 <${letter.to}>: Mailbox full`;
  return lines(
    `Return-Path: <>`,
    `Delivered-To: ${to}`,
    `Received: by mx.example.org (Postfix) id 4XyZ1h2kLmz9sWQ; Tue, 10 Feb 2026 10:00:05 +0000 (UTC)`,
    `Date: Tue, 10 Feb 2026 10:00:05 +0000 (UTC)`,
    `From: MAILER-DAEMON@mx.example.org (Mail Delivery System)`,
    `Subject: ${failed ? 'Undelivered Mail Returned to Sender' : 'Delayed Mail (still being retried)'}`,
    `To: ${to}`,
    `Auto-Submitted: auto-replied`,
    `MIME-Version: 1.0`,
    `Content-Type: multipart/report; report-type=delivery-status;`,
    `\tboundary="4XyZ1h2kLmz9sWQ.1770717605/mx.example.org"`,
    `Content-Transfer-Encoding: 8bit`,
    `Message-Id: <${options.messageId}>`,
    '',
    'This is a MIME-encapsulated message.',
    '',
    '--4XyZ1h2kLmz9sWQ.1770717605/mx.example.org',
    'Content-Description: Notification',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    'This is the mail system at host mx.example.org.',
    '',
    failed
      ? "I'm sorry to have to inform you that your message could not\r\nbe delivered to one or more recipients."
      : '####################################################################\r\n# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\r\n####################################################################',
    '',
    `<${letter.to}>: host mx.example.org[192.0.2.25] said: ${diagnostic.slice(6)}`,
    '',
    '--4XyZ1h2kLmz9sWQ.1770717605/mx.example.org',
    'Content-Description: Delivery report',
    'Content-Type: message/delivery-status',
    '',
    'Reporting-MTA: dns; mx.example.org',
    'X-Postfix-Queue-ID: 4XyZ1h2kLmz9sWQ',
    `X-Postfix-Sender: rfc822; ${letter.from}`,
    'Arrival-Date: Tue, 10 Feb 2026 10:00:01 +0000 (UTC)',
    '',
    `Final-Recipient: rfc822; ${letter.to}`,
    `Original-Recipient: rfc822;${letter.to}`,
    `Action: ${options.action}`,
    `Status: ${status}`,
    'Remote-MTA: dns; mx.example.org',
    `Diagnostic-Code: ${diagnostic}`,
    ...(failed ? [] : ['Will-Retry-Until: Tue, 15 Feb 2026 10:00:01 +0000 (UTC)']),
    '',
    '--4XyZ1h2kLmz9sWQ.1770717605/mx.example.org',
    'Content-Description: Undelivered Message Headers',
    'Content-Type: text/rfc822-headers',
    'Content-Transfer-Encoding: 8bit',
    '',
    headersOf(letter.raw),
    '',
    '--4XyZ1h2kLmz9sWQ.1770717605/mx.example.org--',
    '',
  );
}

export interface ArfOptions {
  messageId: string;
  /** The feedback loop's address (a bare BOUNCE_ADDRESS: an FBL is registered once, for the domain). */
  to: string;
  /** Whether the report has the Original-Mail-From field (some providers send only the enclosed letter). */
  originalMailFrom: boolean;
  feedbackType?: string;
}

/** A reader's "this is spam" as a mailbox provider's feedback loop reports it: the letter enclosed as received. */
export function arfComplaint(letter: ReceivedEmail, options: ArfOptions): string {
  return lines(
    'From: <feedbackloop@mail.example.net>',
    'Date: Tue, 10 Feb 2026 12:00:00 +0000',
    'Subject: FW: complaint about a message from example.test',
    `To: <${options.to}>`,
    'MIME-Version: 1.0',
    `Message-ID: <${options.messageId}>`,
    'Content-Type: multipart/report; report-type=feedback-report;',
    '\tboundary="part1_13d.2e68ed54_boundary"',
    '',
    '--part1_13d.2e68ed54_boundary',
    'Content-Type: text/plain; charset="US-ASCII"',
    'Content-Transfer-Encoding: 7bit',
    '',
    'This is an email abuse report for an email message received from IP',
    '192.0.2.1 on Tue, 10 Feb 2026 10:00:00 +0000.',
    'For more information about this format please see http://www.mipassoc.org/arf/.',
    '',
    '--part1_13d.2e68ed54_boundary',
    'Content-Type: message/feedback-report',
    '',
    `Feedback-Type: ${options.feedbackType ?? 'abuse'}`,
    'User-Agent: SomeGenerator/1.0',
    'Version: 1',
    ...(options.originalMailFrom ? [`Original-Mail-From: <${letter.from}>`] : []),
    `Original-Rcpt-To: <${letter.to}>`,
    'Arrival-Date: Tue, 10 Feb 2026 10:00:00 +0000',
    'Reporting-MTA: dns; mail.example.net',
    'Source-IP: 192.0.2.1',
    'Reported-Domain: example.test',
    '',
    '--part1_13d.2e68ed54_boundary',
    'Content-Type: message/rfc822',
    'Content-Disposition: inline',
    '',
    `Return-Path: <${letter.from}>`,
    'Received: from mx.example.test (mx.example.test [192.0.2.1]) by mail.example.net with ESMTP',
    letter.raw.replace(/\r?\n/g, CRLF).trimEnd(),
    '',
    '--part1_13d.2e68ed54_boundary--',
    '',
  );
}
