import { createHash } from 'node:crypto';
import type { Mailer, OutgoingEmail, SendOutcome } from './mailer.js';

export interface ResendOptions {
  apiKey: string;
  /** The API's address; another one only for tests or a proxy. */
  baseUrl?: string;
  /** Requests in flight at once. */
  concurrency?: number;
  /** Give up on a request after this long (the idempotency key makes a retry safe). */
  timeoutMs?: number;
}

/**
 * Sends through Resend's HTTP API (POST /emails) with `fetch`: no sockets, so it suits Cloudflare Workers.
 * Every request carries an Idempotency-Key made of the message: a retry after a lost answer, a 5xx or a
 * timeout can't make the provider send a second letter (it keeps keys for 24 hours).
 */
export function createResendMailer(options: ResendOptions): Mailer {
  const baseUrl = (options.baseUrl ?? 'https://api.resend.com').replace(/\/+$/, '');
  return {
    description: `Resend API at ${new URL(baseUrl).host}`,
    concurrency: options.concurrency ?? 4,
    structuredOnly: true,
    async send(message): Promise<SendOutcome> {
      if (!('html' in message)) {
        return {
          status: 'permanent',
          error: 'the Resend API takes structured emails, not raw MIME',
          bounce: false,
        };
      }
      const email = message as OutgoingEmail;
      let res: Response;
      try {
        res = await fetch(`${baseUrl}/emails`, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${options.apiKey}`,
            'content-type': 'application/json',
            'idempotency-key': idempotencyKey(email),
          },
          body: JSON.stringify(resendBody(email)),
          signal: AbortSignal.timeout(options.timeoutMs ?? 30_000),
        });
      } catch (error) {
        // Lost on the way or no answer: the idempotency key makes trying again safe.
        return { status: 'temporary', error: `Resend API unreachable: ${(error as Error).message}` };
      }
      if (res.ok) return { status: 'sent' };
      const detail = (await res.text().catch(() => '')).slice(0, 300);
      const error = `Resend API answered ${res.status}: ${detail}`;
      // 400/422: this email is wrong (an address the API refuses, say); anything else may pass later
      // (401/403 a key being fixed, 409 the same key in flight, 429 too fast, 5xx the provider).
      if (res.status === 400 || res.status === 422) return { status: 'permanent', error, bounce: false };
      return { status: 'temporary', error };
    },
    async close() {},
  };
}

/** The same email always gets the same key (a letter's Message-ID is made of essay and subscriber). */
function idempotencyKey(email: OutgoingEmail): string {
  const basis = email.messageId ?? `${email.to}\n${email.subject}\n${email.text}`;
  return `oneletter-${createHash('sha256').update(basis).digest('hex').slice(0, 48)}`;
}

function resendBody(email: OutgoingEmail): Record<string, unknown> {
  // The provider sets its own Message-ID; our other headers (List-Unsubscribe, List-Id …) go as they are.
  const headers = Object.fromEntries(
    Object.entries(email.headers ?? {}).filter(([name]) => name.toLowerCase() !== 'message-id'),
  );
  return {
    from: email.from,
    to: [email.to],
    subject: email.subject,
    html: email.html,
    text: email.text,
    ...(Object.keys(headers).length ? { headers } : {}),
  };
}
