import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { Config } from '../config.js';
import type { Db } from '../db/client.js';
import { rows } from '../db/client.js';
import type { Logger } from '../log.js';
import { describeError } from '../log.js';
import type { Mailer, SendOutcome } from '../mail/mailer.js';
import type { EssayForEmail, EssayLetters } from '../mail/messages.js';
import { confirmationEmail, essayLetters } from '../mail/messages.js';
import type { Renderer } from '../mail/render.js';
import { claimConfirmations, confirmationNotSent, issueConfirmation } from './confirmations.js';
import type { DeliveryKey, DeliveryResult, SendingDelivery } from './queries.js';
import {
  claimForSending,
  markBounced,
  reapExpiredLeases,
  recordResults,
  releaseClaims,
  renewLeases,
} from './queries.js';
import { createRateLimiter } from './rate.js';

export type DispatcherConfig = Pick<
  Config,
  | 'mailFrom'
  | 'publicUrl'
  | 'siteName'
  | 'siteUrl'
  | 'confirmTokenTtlMs'
  | 'confirmResendMs'
  | 'sendRate'
  | 'sendConcurrency'
  | 'batchSize'
  | 'pollMs'
  | 'leaseMs'
  | 'maxAttempts'
  | 'retryBaseMs'
>;

export interface DispatcherDeps {
  db: Db;
  mailer: Mailer;
  renderer: Renderer;
  config: DispatcherConfig;
  log: Logger;
}

/** The send-out engine: claims work from the database, sends it, records what happened. Knows nothing of HTTP. */
export interface Dispatcher {
  readonly id: string;
  /** Runs until stop(): polls, and wakes at once on kick(). */
  start(): void;
  /** Wakes a sleeping dispatcher: new work was queued. */
  kick(): void;
  /** One round: reaps, mails confirmations, sends one batch. Returns how many items it handled. */
  runOnce(): Promise<number>;
  /** Stops claiming, finishes what is in SMTP's hands, releases the rest, and resolves when idle. */
  stop(): Promise<void>;
}

const MAX_RETRY_MS = 6 * 3_600_000;
/**
 * A round also ends after this long, whatever DISPATCH_BATCH_SIZE says, so that confirmation emails (looked at
 * between rounds) never wait long behind a send-out, however slow SEND_RATE makes it.
 */
const ROUND_MS = 1000;
/** Essays whose letters a dispatcher keeps ready: memory stays flat however many essays it sends. */
const MAX_ESSAYS_KEPT = 8;

export function createDispatcher(deps: DispatcherDeps): Dispatcher {
  const { db, mailer, renderer, config, log } = deps;
  const id = randomUUID();
  const concurrency = Math.max(1, Math.min(config.sendConcurrency, mailer.concurrency));
  /**
   * Deliveries claimed `sending` at once, as they go out. Two groups at most are in hand (one sent, the next
   * claimed), so a crash leaves at most twice this many unknown.
   */
  const groupSize = Math.max(10, Math.min(50, concurrency * 2));
  const limiter = createRateLimiter(config.sendRate);
  /** Each essay's letters, built from templates rendered once per send-out. */
  const letters = new Map<number, Promise<EssayLetters>>();
  /** Results that could not be recorded yet (database away): kept and retried, never dropped. */
  const unrecorded: DeliveryResult[] = [];
  /** Subscribers whose address was refused for good, to mark bounced with the next results. */
  const bounced = new Set<number>();

  let stopping = false;
  let loop: Promise<void> | undefined;
  let wake: (() => void) | undefined;
  /** A kick that came while a round ran: that round may have looked before the work was there. */
  let kicked = false;
  let lastReap = 0;
  let renewTimer: ReturnType<typeof setInterval> | undefined;
  let failing = false;
  /** A round failed midway: its leftover claims are still ours (and renewed), to release before claiming more. */
  let strayClaims = false;
  /**
   * Where the last claim ended: the next one starts after it, so claiming costs the same at the end of a long
   * send-out as at its start (no walk over the rows already sent). Only a hint: at the end of the ledger,
   * the next claim starts from the front again, and finds retries and released claims there.
   */
  let cursor: DeliveryKey | undefined;

  const backoff = (attempts: number) =>
    Math.min(MAX_RETRY_MS, config.retryBaseMs * 2 ** Math.max(0, attempts - 1)) * (0.8 + Math.random() * 0.4);

  async function reap(): Promise<void> {
    if (Date.now() - lastReap < config.leaseMs / 3) return;
    lastReap = Date.now();
    const { released, unknown } = await reapExpiredLeases(db);
    if (released || unknown) log.warn({ msg: 'expired claims reaped', released, unknown });
  }

  async function sendConfirmations(): Promise<number> {
    const claimed = await claimConfirmations(db, 50, config.leaseMs);
    for (const request of claimed) {
      if (stopping) break;
      const toSend = await issueConfirmation(
        db,
        request.id,
        config.confirmResendMs,
        config.confirmTokenTtlMs,
      );
      if (!toSend) continue;
      let outcome: SendOutcome;
      try {
        // SEND_RATE counts every message, confirmations too (an import of thousands would burst otherwise).
        await limiter.take();
        outcome = await mailer.send(await confirmationEmail(config, renderer, toSend, toSend.token));
      } catch (error) {
        outcome = { status: 'temporary', error: describeError(error).error as string };
      }
      if (outcome.status === 'sent' || outcome.status === 'unknown') continue;
      const retry = outcome.status === 'temporary' && toSend.attempts < config.maxAttempts;
      await confirmationNotSent(db, toSend.id, {
        retryMs: retry ? backoff(toSend.attempts) : null,
        error: outcome.error,
      });
    }
    return claimed.length;
  }

  function lettersFor(essayId: number): Promise<EssayLetters> {
    let found = letters.get(essayId);
    if (!found) {
      found = rows<EssayForEmail>(
        db,
        sql`select id, slug, title, url, summary from essays where id = ${essayId}`,
      ).then(([essay]) => {
        if (!essay) throw new Error(`essay ${essayId} not found`);
        return essayLetters(config, renderer, essay);
      });
      found.catch(() => letters.delete(essayId));
      letters.set(essayId, found);
      // Kept for the send-outs under way, not for every essay this process ever sent: the oldest goes
      // (built again, should its send-out still have retries to come).
      if (letters.size > MAX_ESSAYS_KEPT) letters.delete(letters.keys().next().value as number);
    }
    return found;
  }

  async function sendOne(delivery: SendingDelivery, attempts: number): Promise<DeliveryResult> {
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
    switch (outcome.status) {
      case 'sent':
        return { ...key, status: 'sent', error: null, retryMs: 0 };
      case 'unknown':
        return { ...key, status: 'unknown', error: outcome.error, retryMs: 0 };
      case 'permanent':
        if (outcome.bounce) bounced.add(delivery.subscriberId);
        return { ...key, status: 'failed', error: outcome.error, retryMs: 0 };
      case 'temporary':
        if (attempts >= config.maxAttempts) {
          return {
            ...key,
            status: 'failed',
            error: `gave up after ${attempts} attempts: ${outcome.error}`,
            retryMs: 0,
          };
        }
        return { ...key, status: 'pending', error: outcome.error, retryMs: backoff(attempts) };
    }
  }

  /** Records results; if the database is away, keeps them to record later. */
  async function record(results: DeliveryResult[]): Promise<void> {
    unrecorded.push(...results);
    if (unrecorded.length === 0 && bounced.size === 0) return;
    const batch = unrecorded.splice(0);
    const bouncedIds = [...bounced];
    try {
      await recordResults(db, id, batch);
      if (bouncedIds.length) {
        await markBounced(db, bouncedIds);
        for (const b of bouncedIds) bounced.delete(b);
      }
    } catch (error) {
      unrecorded.unshift(...batch);
      throw error;
    }
  }

  /**
   * One round: claims up to a batch of deliveries, a small group at a time, and sends them. The next group is
   * claimed while this one is sent, so no worker waits for the database between groups.
   */
  async function sendDeliveries(): Promise<number> {
    // A failed round may have left claims whose answer never came: none reached SMTP, and every result of
    // that round is recorded by now (runOnce records first), so they go back to pending.
    if (strayClaims && unrecorded.length === 0) await releaseClaims(db, id);
    strayClaims = true;
    let taken = 0;
    const roundEnds = Date.now() + ROUND_MS;
    let exhausted = false;
    /** The claim started from the front of the ledger: finding nothing there means there is nothing. */
    let fromFront = cursor === undefined;
    const ready: SendingDelivery[] = [];
    let claiming: Promise<void> | undefined;
    const results: DeliveryResult[] = [];
    const recording: Promise<void>[] = [];
    /** A failed claim (database away) stops the round; what was claimed before it is still sent. */
    let claimFailure: { error: unknown } | undefined;

    const claimNextGroup = () => {
      claiming ??= (async () => {
        let claim = await claimForSending(db, id, groupSize, config.leaseMs, cursor);
        if (claim.taken === 0 && !fromFront) {
          // The end of the ledger: retries and released claims wait at its front.
          cursor = undefined;
          fromFront = true;
          claim = await claimForSending(db, id, groupSize, config.leaseMs);
        }
        if (claim.taken === 0) {
          exhausted = true;
          return;
        }
        taken += claim.taken;
        cursor = claim.last;
        ready.push(...claim.sending);
      })()
        .catch((error) => {
          claimFailure ??= { error };
        })
        .finally(() => {
          claiming = undefined;
        });
      return claiming;
    };

    const take = async () => {
      for (;;) {
        const delivery = ready.shift();
        const more =
          !claimFailure && !stopping && !exhausted && taken < config.batchSize && Date.now() < roundEnds;
        // The next group is claimed while a whole group is still to send, so that a slow claim (the
        // database busy) doesn't leave the connections waiting. Two groups at most are in hand.
        if (more && ready.length < groupSize) void claimNextGroup();
        // What is claimed `sending` is sent, even after a failure: left behind, it would stay `sending`.
        if (delivery) return delivery;
        if (claiming) await claiming;
        else if (claimFailure) throw claimFailure.error;
        else if (!more) return undefined;
      }
    };

    // Checked once every worker is done; handled at once so a failure (database away) can't crash the process.
    const recordNow = () => {
      const recorded = record(results.splice(0));
      recorded.catch(() => {});
      recording.push(recorded);
    };

    const worker = async () => {
      for (let delivery = await take(); delivery; delivery = await take()) {
        await limiter.take();
        results.push(await sendOne(delivery, delivery.attempts));
        if (results.length >= groupSize) recordNow();
      }
    };

    // Every worker finishes the send it is in before the results are recorded, even when another one failed:
    // a result left behind would keep its delivery `sending` (and its lease renewed) for good.
    const workers = await Promise.allSettled(Array.from({ length: concurrency }, worker));
    recordNow();
    const recorded = await Promise.allSettled(recording);
    for (const r of [...workers, ...recorded]) if (r.status === 'rejected') throw r.reason;
    strayClaims = false;
    return taken;
  }

  async function runOnce(): Promise<number> {
    if (unrecorded.length || bounced.size) await record([]);
    await reap();
    const confirmations = await sendConfirmations();
    const deliveries = stopping ? 0 : await sendDeliveries();
    return confirmations + deliveries;
  }

  async function run(): Promise<void> {
    renewTimer = setInterval(
      () => {
        renewLeases(db, id, config.leaseMs).catch((error) =>
          log.warn({ msg: 'could not renew claims', ...describeError(error) }),
        );
      },
      Math.max(500, config.leaseMs / 3),
    );
    renewTimer.unref?.();
    while (!stopping) {
      let handled = 0;
      kicked = false;
      try {
        handled = await runOnce();
        if (failing) log.info({ msg: 'dispatcher working again' });
        failing = false;
      } catch (error) {
        if (!failing) log.error({ msg: 'dispatcher round failed; retrying', ...describeError(error) });
        failing = true;
      }
      if (failing) await sleep(Math.max(config.pollMs, 1000));
      else if (handled === 0 && !kicked) await sleep(config.pollMs);
    }
  }

  function sleep(msToWait: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, msToWait);
      function done() {
        clearTimeout(timer);
        wake = undefined;
        resolve();
      }
      wake = done;
    });
  }

  return {
    id,
    start() {
      if (loop) return;
      stopping = false;
      loop = run();
    },
    kick() {
      kicked = true;
      wake?.();
    },
    runOnce,
    async stop() {
      stopping = true;
      wake?.();
      await loop;
      loop = undefined;
      if (renewTimer) clearInterval(renewTimer);
      try {
        await record([]);
        await releaseClaims(db, id);
      } catch (error) {
        log.error({ msg: 'could not record the last results at stop', ...describeError(error) });
      }
    },
  };
}
