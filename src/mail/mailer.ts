/** One email, fully rendered, ready to hand to a transport. */
export interface OutgoingEmail {
  from: string;
  to: string;
  subject: string;
  text: string;
  html: string;
  /** Without angle brackets, e.g. `essay-3.17@example.com`. */
  messageId?: string;
  headers?: Record<string, string>;
  /** The link the email asks its reader to follow (a confirmation's): the outbox logs it, nothing sends it. */
  link?: string;
}

/** An email already assembled as a MIME message, with its SMTP envelope: sent as it is. */
export interface RawEmail {
  envelope: { from: string; to: string };
  raw: Buffer;
  /** Without angle brackets; names the .eml file in the outbox. */
  messageId?: string;
  /** For logs. */
  subject: string;
  /** A letter's one-click unsubscribe link: the outbox logs it, nothing sends it. */
  link?: string;
}

/**
 * What became of one email.
 * - `sent`: the server took it.
 * - `temporary`: the server did not take it (4xx, refused connection): safe to try again later.
 * - `permanent`: the server refused it for good (5xx); `bounce` when the recipient address itself was refused.
 * - `unknown`: the connection broke after the message was handed over: it may have been taken, so never resend.
 */
export type SendOutcome =
  | { status: 'sent' }
  | { status: 'temporary' | 'unknown'; error: string }
  | { status: 'permanent'; error: string; bounce: boolean };

/** A way to send email: SMTP, an outbox folder, an HTTP API. */
export interface Mailer {
  /** Short description for the start-up log, with no secrets. */
  readonly description: string;
  /** How many sends this transport can usefully run at once. */
  readonly concurrency: number;
  /** True when the transport composes messages itself and so takes only OutgoingEmail, never RawEmail. */
  readonly structuredOnly?: boolean;
  /**
   * Resolves when a send could start its transaction at once (SMTP: a connection is open and idle), and
   * rejects when it can't (the server unreachable). The dispatcher waits for it before it takes a letter
   * from the ledger, so that a letter is handed over only to a transport ready to start sending it.
   */
  ready?(): Promise<void>;
  send(email: OutgoingEmail | RawEmail): Promise<SendOutcome>;
  close(): Promise<void>;
}

/** Hides most of an address for logs: `j***@example.com`. */
export function maskEmail(email: string): string {
  const at = email.lastIndexOf('@');
  if (at < 1) return '***';
  return `${email[0]}***${email.slice(at)}`;
}
