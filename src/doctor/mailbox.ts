import { checkMailbox, shownMailbox } from '../bounces/mailbox.js';
import { describeError } from '../log.js';
import type { Check } from './check.js';

const LOOPBACK = /^(localhost|127\.\d+\.\d+\.\d+|\[::1\])$/i;

/**
 * The bounce mailbox, when one is configured: logs in to BOUNCE_MAILBOX_URL as the dispatcher would and opens
 * its folder. BOUNCE_ADDRESS alone is a warning: bounces go there, and nothing here reads them.
 */
export async function checkBounceMailbox(config: {
  bounceAddress?: string;
  bounceMailboxUrl?: string;
}): Promise<Check | undefined> {
  const name = 'Bounce mailbox';
  if (!config.bounceMailboxUrl) {
    if (!config.bounceAddress) return undefined;
    return {
      name,
      verdict: 'warn',
      detail: `letters' bounces go to ${config.bounceAddress} (with an id per letter), and nothing here reads that mailbox`,
      fix: 'set BOUNCE_MAILBOX_URL=imaps://user:password@imap.example.com/INBOX for the mailbox it delivers to',
    };
  }
  const shown = shownMailbox(config.bounceMailboxUrl);
  try {
    const { messages } = await checkMailbox(config.bounceMailboxUrl);
    const url = new URL(config.bounceMailboxUrl);
    if (url.protocol === 'imap:' && !LOOPBACK.test(url.hostname)) {
      return {
        name,
        verdict: 'warn',
        detail: `logged in to ${shown} (${messages} messages), with the password in clear text over the network`,
        fix: 'use imaps:// (port 993)',
      };
    }
    return { name, verdict: 'ok', detail: `logged in to ${shown} (${messages} messages)` };
  } catch (error) {
    const refused = (error as { authenticationFailed?: boolean }).authenticationFailed === true;
    return {
      name,
      verdict: 'fail',
      detail: refused
        ? `${shown} refused the login`
        : `could not read ${shown}: ${String(describeError(error).error)}`,
      fix: refused
        ? 'check the user and password in BOUNCE_MAILBOX_URL (percent-encode @, : and / in them)'
        : 'check the host, port and folder in BOUNCE_MAILBOX_URL, and that this machine can reach it',
    };
  }
}
