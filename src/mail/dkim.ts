import { createPrivateKey } from 'node:crypto';
import DKIM from 'nodemailer/lib/dkim';
import type { RawEmail } from './mailer.js';

export interface DkimOptions {
  domain: string;
  selector: string;
  /** PEM private key (RSA or Ed25519). */
  privateKey: string;
}

/** Signs a raw message; the same message comes back with a DKIM-Signature header on top. */
export type DkimSigner = (email: RawEmail) => Promise<RawEmail>;

/**
 * The headers each signature covers. RFC 8058 requires List-Unsubscribe and List-Unsubscribe-Post to be
 * signed (or mail clients won't offer one-click); the rest is what receivers check for alignment.
 */
const SIGNED_HEADERS = [
  'From',
  'To',
  'Subject',
  'Date',
  'Message-ID',
  'MIME-Version',
  'Content-Type',
  'List-Id',
  'List-Unsubscribe',
  'List-Unsubscribe-Post',
  'Auto-Submitted',
].join(':');

/** Checks the key once (a clear error at start, not at the first letter) and returns the signer. */
export function createDkimSigner(options: DkimOptions): DkimSigner {
  createPrivateKey(options.privateKey);
  const dkim = new DKIM({
    domainName: options.domain,
    keySelector: options.selector,
    privateKey: options.privateKey,
    headerFieldNames: SIGNED_HEADERS,
  });
  return async (email) => {
    const chunks: Buffer[] = [];
    for await (const chunk of dkim.sign(email.raw)) chunks.push(Buffer.from(chunk));
    return {
      envelope: email.envelope,
      raw: Buffer.concat(chunks),
      messageId: email.messageId,
      subject: email.subject,
    };
  };
}
