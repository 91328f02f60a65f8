import type { Db } from '../db/client.js';
import { describeError } from '../log.js';
import type { Mailer, SendOutcome } from '../mail/mailer.js';
import type { MessageConfig } from '../mail/messages.js';
import { confirmationEmail } from '../mail/messages.js';
import type { Renderer } from '../mail/render.js';
import { claimConfirmations, confirmationNotSent, issueConfirmation } from './confirmations.js';
import type { createLetterCache } from './letters.js';
import type { DeliveryResult, SendingDelivery } from './queries.js';

/** Sending: one message handed over to SMTP, and what its outcome means for the ledger. */

export interface RetryPolicy {
  maxAttempts: number;
  retryBaseMs: number;
}

const MAX_RETRY_MS = 6 * 3_600_000;

/** How long a message waits before its next attempt: doubling from retryBaseMs, ±20 %, six hours at most. */
export function backoff(policy: RetryPolicy, attempts: number): number {
  return (
    Math.min(MAX_RETRY_MS, policy.retryBaseMs * 2 ** Math.max(0, attempts - 1)) * (0.8 + Math.random() * 0.4)
  );
}

/** Sends one letter handed over by the ledger and says what to record (and whether the address bounced). */
export async function sendLetter(
  mailer: Mailer,
  lettersFor: ReturnType<typeof createLetterCache>,
  policy: RetryPolicy,
  delivery: SendingDelivery,
): Promise<{ result: DeliveryResult; bounce: boolean }> {
  let outcome: SendOutcome;
  try {
    const letters = await lettersFor(delivery.essayId);
    const recipient = { ...delivery, id: delivery.subscriberId };
    const letter = mailer.structuredOnly ? await letters.email(recipient) : await letters.to(recipient);
    outcome = await mailer.send(letter);
  } catch (error) {
    // Thrown before SMTP had the message (rendering, the outbox folder): safe to try again.
    outcome = { status: 'temporary', error: String(describeError(error).error) };
  }
  const key = { essayId: delivery.essayId, subscriberId: delivery.subscriberId };
  const result = (status: DeliveryResult['status'], error: string | null, retryMs = 0) => ({
    result: { ...key, status, error, retryMs },
    bounce: outcome.status === 'permanent' && outcome.bounce,
  });
  switch (outcome.status) {
    case 'sent':
      return result('sent', null);
    case 'unknown':
      return result('unknown', outcome.error);
    case 'permanent':
      return result('failed', outcome.error);
    case 'temporary':
      if (delivery.attempts >= policy.maxAttempts)
        return result('failed', `gave up after ${delivery.attempts} attempts: ${outcome.error}`);
      return result('pending', outcome.error, backoff(policy, delivery.attempts));
  }
}

export interface ConfirmationSending {
  db: Db;
  mailer: Mailer;
  renderer: Renderer;
  config: MessageConfig & RetryPolicy & { confirmResendMs: number; leaseMs: number };
  /** SEND_RATE counts every message, confirmations too (an import of thousands would burst otherwise). */
  limiter: { take(): Promise<void> };
}

/** Mails the queued confirmation requests (up to 50) that need an email; returns how many it took. */
export async function sendConfirmations(deps: ConfirmationSending, stopping: () => boolean): Promise<number> {
  const { db, mailer, renderer, config, limiter } = deps;
  const claimed = await claimConfirmations(db, 50, config.leaseMs);
  for (const request of claimed) {
    if (stopping()) break;
    const toSend = await issueConfirmation(db, request.id, config.confirmResendMs, config.confirmTokenTtlMs);
    if (!toSend) continue;
    let outcome: SendOutcome;
    try {
      await limiter.take();
      outcome = await mailer.send(await confirmationEmail(config, renderer, toSend, toSend.token));
    } catch (error) {
      outcome = { status: 'temporary', error: describeError(error).error as string };
    }
    if (outcome.status === 'sent' || outcome.status === 'unknown') continue;
    const retry = outcome.status === 'temporary' && toSend.attempts < config.maxAttempts;
    await confirmationNotSent(db, toSend.id, {
      retryMs: retry ? backoff(config, toSend.attempts) : null,
      error: outcome.error,
    });
  }
  return claimed.length;
}
