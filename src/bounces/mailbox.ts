import { sql } from 'drizzle-orm';
import type { ImapFlow, ImapFlowOptions } from 'imapflow';
import type { Config } from '../config.js';
import type { Db } from '../db/client.js';
import { rows } from '../db/client.js';
import type { Logger } from '../log.js';
import { describeError } from '../log.js';
import { maskEmail } from '../mail/mailer.js';
import type { Verp } from '../mail/verp.js';
import { createVerp } from '../mail/verp.js';
import type { Polling } from '../poll.js';
import { startPolling } from '../poll.js';
import type { MailReport } from './reports.js';
import { readReport } from './reports.js';
import { applyReports } from './suppress.js';

/**
 * The bounce mailbox (BOUNCE_MAILBOX_URL), for sites that send through their own mail server: the address
 * BOUNCE_ADDRESS delivers there, and every essay letter's envelope sender is BOUNCE_ADDRESS with an id that
 * names the letter (mail/verp.ts). Each poll reads the reports in the folder, and those whose address holds
 * an id this service made are acted on (bounces/suppress.ts, source `mailbox`), then moved to
 * BOUNCE_MAILBOX_MOVE_TO or deleted. Nothing else is touched: no flag, no move, not even `\Seen`.
 */

export type MailboxConfig = Pick<
  Config,
  'bounceAddress' | 'publisherToken' | 'bounceMailboxMoveTo' | 'softBounceLimit'
> & { bounceMailboxUrl: string };

export interface MailboxDeps {
  db: Db;
  config: MailboxConfig;
  log: Logger;
}

/** What one poll did. */
export interface MailboxPoll {
  /** Reports of ours acted on, then moved or deleted (read again after a crash: acted on once). */
  handled: number;
  /** Reports of ours that had been acted on already (the same report twice): moved or deleted all the same. */
  duplicates: number;
  /** Messages that looked like reports and were left as they are: not ours, or asking nothing. */
  leftAlone: number;
}

/** Reports fetched at once: each is a few kilobytes; the folder is read through in batches. */
const BATCH = 50;
const MAX_REPORT_BYTES = 2 * 1024 * 1024;

/** Where the mailbox is: host, port, TLS and login from the URL; the folder from its path (INBOX when none). */
export function mailboxSettings(url: string): { options: ImapFlowOptions; folder: string } {
  const parsed = new URL(url);
  const secure = parsed.protocol === 'imaps:';
  const folder = decodeURIComponent(parsed.pathname.replace(/^\/+/, '')) || 'INBOX';
  return {
    folder,
    options: {
      host: parsed.hostname,
      port: Number(parsed.port) || (secure ? 993 : 143),
      secure,
      auth: { user: decodeURIComponent(parsed.username), pass: decodeURIComponent(parsed.password) },
      logger: false,
      disableAutoIdle: true,
      connectionTimeout: 30_000,
      greetingTimeout: 16_000,
      socketTimeout: 120_000,
    },
  };
}

/** The mailbox's address for logs: no credentials. */
export function shownMailbox(url: string): string {
  const parsed = new URL(url);
  return `${parsed.protocol}//${parsed.host}${parsed.pathname}`;
}

async function connect(url: string): Promise<{ client: ImapFlow; folder: string }> {
  const { ImapFlow } = await import('imapflow');
  const { options, folder } = mailboxSettings(url);
  const client = new ImapFlow(options);
  // A connection that breaks is an 'error' event besides the failed command: the command's error is the one kept.
  client.on('error', () => {});
  await client.connect();
  return { client, folder };
}

/** Logs in and opens the folder, then logs out: `npm run doctor`'s check. Throws what the server said. */
export async function checkMailbox(url: string): Promise<{ messages: number }> {
  const { client, folder } = await connect(url);
  try {
    const status = await client.status(folder, { messages: true });
    if (!status) throw new Error(`the folder ${folder} could not be opened`);
    return { messages: status.messages ?? 0 };
  } finally {
    await client.logout().catch(() => client.close());
  }
}

/** Reads the mailbox once. Throws when the server can't be reached or refuses: nothing changed then. */
export async function readBounceMailbox(deps: MailboxDeps): Promise<MailboxPoll> {
  const { config } = deps;
  if (!config.bounceAddress) throw new Error('BOUNCE_MAILBOX_URL needs BOUNCE_ADDRESS');
  const verp = createVerp(config.bounceAddress, config.publisherToken);
  const poll: MailboxPoll = { handled: 0, duplicates: 0, leftAlone: 0 };
  const { client, folder } = await connect(config.bounceMailboxUrl);
  try {
    const lock = await client.getMailboxLock(folder);
    try {
      // Only messages that say they are a report are fetched (a SEARCH on the server): a mailbox that is
      // also someone's inbox costs a poll nothing for its other mail. A report holds a letter or its headers:
      // anything much larger is not one of ours.
      const query = { header: { 'content-type': 'report' }, smaller: MAX_REPORT_BYTES };
      const uids = (await client.search(query, { uid: true })) || [];
      for (let at = 0; at < uids.length; at += BATCH) {
        const batch = uids.slice(at, at + BATCH);
        // Fetched whole before anything else is asked of the server: no command may run inside a fetch.
        const messages = await client.fetchAll(batch, { uid: true, source: true }, { uid: true });
        const done: number[] = [];
        for (const message of messages) {
          const outcome = message.source ? await act(deps, verp, message.source) : 'left';
          if (outcome === 'left') poll.leftAlone++;
          else {
            done.push(message.uid);
            if (outcome === 'duplicate') poll.duplicates++;
            else poll.handled++;
          }
        }
        if (done.length > 0) await putAway(client, done, config.bounceMailboxMoveTo);
      }
    } finally {
      lock.release();
    }
  } finally {
    await client.logout().catch(() => client.close());
  }
  return poll;
}

/**
 * Acts on one message if it is a report of ours that asks something: a delivery named by a valid id, a
 * permanent or transient failure, or a complaint. The report's Message-ID is its event id: read again (the
 * move failed, another dispatcher read it too), it changes nothing more.
 */
async function act(deps: MailboxDeps, verp: Verp, source: Buffer): Promise<'handled' | 'duplicate' | 'left'> {
  let report: MailReport | undefined;
  try {
    report = await readReport(source);
  } catch {
    return 'left';
  }
  if (!report?.kind) return 'left';
  const delivery = report.addresses.map((a) => verp.read(a)).find((d) => d !== undefined);
  if (!delivery) return 'left';
  const [subscriber] = await rows<{ email: string }>(
    deps.db,
    sql`select email from subscribers where id = ${delivery.subscriberId}`,
  );
  // An erased subscriber: the report is ours and about nobody now; it is put away like the others.
  if (!subscriber) return 'handled';
  const outcome = await applyReports(deps.db, {
    source: 'mailbox',
    eventIds: [report.id],
    reports: [
      { email: subscriber.email, kind: report.kind, reason: report.reason, essayId: delivery.essayId },
    ],
    softBounceLimit: deps.config.softBounceLimit,
  });
  if (outcome.changed.length > 0) {
    // Reasons quote the address (`550 5.1.1 <ann@example.org>: …`): logs show it masked, as everywhere.
    const reason = report.reason.replace(/[^\s<>,;:"()[\]]+@[^\s<>,;:"()[\]]+/g, (a) => maskEmail(a));
    deps.log.info({ msg: `bounce mailbox: ${report.kind}`, essay: delivery.essayId, reason });
  }
  return outcome.duplicate ? 'duplicate' : 'handled';
}

/** Moves the reports acted on to `folder` (made if missing), or deletes them. */
async function putAway(client: ImapFlow, uids: number[], folder: string | undefined): Promise<void> {
  if (!folder) {
    await client.messageDelete(uids, { uid: true });
    return;
  }
  const list = await client.list();
  if (!list.some((box) => box.path === folder)) await client.mailboxCreate(folder);
  await client.messageMove(uids, folder, { uid: true });
}

/** A running poller: reads at start, then every interval, until stop(). */
export type BounceMailbox = Polling;

/**
 * Starts the Node loop around readBounceMailbox, in the dispatcher's process. A failing mailbox (the server
 * away, the password changed) logs once, and once more when it works again; reports wait on the server.
 */
export function startBounceMailbox(deps: MailboxDeps & { intervalMs: number }): BounceMailbox {
  let failing = false;
  const mailbox = shownMailbox(deps.config.bounceMailboxUrl);
  return startPolling(
    () =>
      readBounceMailbox(deps)
        .then((poll) => {
          if (failing) deps.log.info({ msg: 'bounce mailbox read again', mailbox });
          failing = false;
          if (poll.handled || poll.duplicates)
            deps.log.info({ msg: 'bounce mailbox read', mailbox, ...poll });
        })
        .catch((error) => {
          if (!failing)
            deps.log.warn({ msg: 'bounce mailbox not read; retrying', mailbox, ...describeError(error) });
          failing = true;
        }),
    deps.intervalMs,
  );
}
