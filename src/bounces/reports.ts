import { createHash } from 'node:crypto';
import type { ReportKind } from './suppress.js';

/**
 * Reports that come back by mail: delivery status notifications (RFC 3464, `multipart/report;
 * report-type=delivery-status`) and complaint feedback reports (ARF, RFC 5965, `report-type=feedback-report`).
 * Anything else (a reply, an auto-responder, a bounce in free text) is not a report and is left to people.
 */

export interface MailReport {
  /** The report's Message-ID, else a hash of it: the same report read twice is one event. */
  id: string;
  /** Every address the report was sent to or names as the original envelope sender: where a VERP id may be. */
  addresses: string[];
  /** What the report asks of the list; undefined when nothing (a delivery, a `not-spam` report). */
  kind: Exclude<ReportKind, 'delivered'> | undefined;
  /** The reporter's words, for the subscriber's history: the status and diagnostic, or the feedback type. */
  reason: string;
}

/** Reads a message as a report, or undefined when it is none. */
export async function readReport(raw: Uint8Array): Promise<MailReport | undefined> {
  const { default: PostalMime } = await import('postal-mime');
  const email = await PostalMime.parse(raw, { attachmentEncoding: 'utf8' });
  const header = (key: string) => email.headers.filter((h) => h.key === key).map((h) => h.value);
  const contentType = header('content-type')[0] ?? '';
  if (!/^\s*multipart\/report\b/i.test(contentType)) return undefined;
  const reportType = /report-type\s*=\s*"?([\w-]+)/i.exec(contentType)?.[1]?.toLowerCase();
  const part = (types: string[]) => {
    const found = email.attachments.find((a) => types.includes(a.mimeType));
    return found && typeof found.content === 'string' ? found.content : undefined;
  };
  const original = part([
    'message/rfc822',
    'text/rfc822-headers',
    'message/global',
    'message/global-headers',
  ]);
  const addresses = [
    ...['to', 'delivered-to', 'x-original-to', 'envelope-to'].flatMap(header),
    ...(original ? headerValues(original.split(/\r?\n\r?\n/, 1)[0] ?? '', 'return-path') : []),
  ];
  const messageId = header('message-id')[0]?.trim();
  const id = messageId || `sha256:${createHash('sha256').update(raw).digest('hex')}`;

  if (reportType === 'delivery-status') {
    const status = part(['message/delivery-status', 'message/global-delivery-status']);
    if (status === undefined) return undefined;
    return { id, addresses: addressesIn(addresses), ...deliveryStatus(fieldGroups(status)) };
  }
  if (reportType === 'feedback-report') {
    const feedback = part(['message/feedback-report']);
    if (feedback === undefined) return undefined;
    const fields = fieldGroups(feedback)[0] ?? new Map<string, string>();
    addresses.push(fields.get('original-mail-from') ?? '');
    const type = (fields.get('feedback-type') ?? '').toLowerCase();
    return {
      id,
      addresses: addressesIn(addresses),
      kind: complaintTypes.has(type) ? 'complaint' : undefined,
      reason: `feedback-type ${type}`,
    };
  }
  return undefined;
}

/**
 * Feedback types that are a reader's complaint about the letter (RFC 5965 section 7.3). `not-spam`
 * (RFC 6430), `virus` and `auth-failure` (RFC 6591, a DMARC failure report) are not: nothing is done.
 */
const complaintTypes = new Set(['abuse', 'fraud', 'other']);

/**
 * What a delivery status says about the one recipient of a letter: `failed` with a 5.x.x status is a
 * permanent failure; `delayed`, or `failed` with a 4.x.x status (a server that gave up retrying), is
 * transient. `delivered`, `relayed` and `expanded` ask nothing. With several recipients, the worst counts.
 */
function deliveryStatus(groups: Map<string, string>[]): Pick<MailReport, 'kind' | 'reason'> {
  let worst: Pick<MailReport, 'kind' | 'reason'> = { kind: undefined, reason: '' };
  for (const fields of groups.slice(1)) {
    const action = (fields.get('action') ?? '').toLowerCase();
    const status = /\d\.\d{1,3}\.\d{1,3}/.exec(fields.get('status') ?? '')?.[0] ?? '';
    const reason = [status, fields.get('diagnostic-code')].filter(Boolean).join(' ');
    if (action === 'failed' && status.startsWith('5')) return { kind: 'bounce', reason };
    if (action === 'failed' || action === 'delayed')
      worst = { kind: 'soft_bounce', reason: reason || action };
  }
  return worst;
}

/**
 * The field groups of a report body: header-like `Name: value` lines, folded lines joined, groups split by
 * blank lines (a delivery status: the per-message fields, then one group per recipient). Names lower-cased;
 * the first of a name in a group counts.
 */
function fieldGroups(body: string): Map<string, string>[] {
  return body
    .replace(/\r\n?/g, '\n')
    .split(/\n[ \t]*\n/)
    .map((group) => {
      const fields = new Map<string, string>();
      for (const line of group.replace(/\n[ \t]+/g, ' ').split('\n')) {
        const at = line.indexOf(':');
        if (at < 1) continue;
        const name = line.slice(0, at).trim().toLowerCase();
        if (!fields.has(name)) fields.set(name, line.slice(at + 1).trim());
      }
      return fields;
    })
    .filter((fields) => fields.size > 0);
}

/** The values of one header in a raw header block. */
function headerValues(block: string, name: string): string[] {
  const unfolded = block.replace(/\r?\n[ \t]+/g, ' ');
  const values: string[] = [];
  for (const line of unfolded.split(/\r?\n/)) {
    const at = line.indexOf(':');
    if (at > 0 && line.slice(0, at).trim().toLowerCase() === name) values.push(line.slice(at + 1).trim());
  }
  return values;
}

/** The addresses in header values (`rfc822; a@b`, `<a@b>`, `Name <a@b>, c@d`), lower-cased, once each. */
function addressesIn(values: string[]): string[] {
  const found = values.flatMap((v) => v.match(/[^\s<>,;:"()[\]]+@[^\s<>,;:"()[\]]+/g) ?? []);
  return [...new Set(found.map((a) => a.toLowerCase()))];
}
