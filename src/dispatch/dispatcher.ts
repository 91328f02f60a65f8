import { randomUUID } from 'node:crypto';
import type { Config } from '../config.js';
import type { Db } from '../db/client.js';
import { pruneStaleSignups } from '../list/erasure.js';
import type { Logger } from '../log.js';
import { describeError } from '../log.js';
import type { Mailer } from '../mail/mailer.js';
import type { Renderer } from '../mail/render.js';
import { createHandout } from './handout.js';
import { createLetterCache } from './letters.js';
import type { DeliveryKey } from './queries.js';
import { reapExpiredLeases, releaseClaims, renewLeases } from './queries.js';
import { createRateLimiter } from './rate.js';
import { createRecorder } from './recorder.js';
import { sendConfirmations, sendLetter } from './send.js';

export type DispatcherConfig = Pick<
  Config,
  | 'mailFrom'
  | 'publicUrl'
  | 'siteName'
  | 'siteUrl'
  | 'confirmTokenTtlMs'
  | 'bounceAddress'
  | 'publisherToken'
  | 'confirmResendMs'
  | 'sendRate'
  | 'sendConcurrency'
  | 'batchSize'
  | 'pollMs'
  | 'leaseMs'
  | 'maxAttempts'
  | 'retryBaseMs'
  | 'pendingExpiryDays'
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

/**
 * A round also ends after this long, whatever DISPATCH_BATCH_SIZE says, so that confirmation emails (looked at
 * between rounds) never wait long behind a send-out, however slow SEND_RATE makes it.
 */
const ROUND_MS = 1000;

/** How often a dispatcher looks for stale signups to erase (PENDING_EXPIRY_DAYS); at its start first. */
const PRUNE_EVERY_MS = 3_600_000;

export function createDispatcher(deps: DispatcherDeps): Dispatcher {
  const { db, mailer, renderer, config, log } = deps;
  const id = randomUUID();
  /** Letters in SMTP's hands at once: what a crash can leave `unknown`, with the results not yet recorded. */
  const concurrency = Math.max(1, Math.min(config.sendConcurrency, mailer.concurrency));
  const limiter = createRateLimiter(config.sendRate);
  const lettersFor = createLetterCache(db, config, renderer);
  const recorder = createRecorder(db, id);

  let stopping = false;
  let loop: Promise<void> | undefined;
  let wake: (() => void) | undefined;
  /** A kick that came while a round ran: that round may have looked before the work was there. */
  let kicked = false;
  let lastReap = 0;
  let lastPrune: number | undefined;
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

  async function reap(): Promise<void> {
    if (Date.now() - lastReap < config.leaseMs / 3) return;
    lastReap = Date.now();
    const { released, unknown } = await reapExpiredLeases(db);
    if (released || unknown) log.warn({ msg: 'expired claims reaped', released, unknown });
  }

  /** Erases the signups never confirmed past PENDING_EXPIRY_DAYS, in batches: one log line per run that erased. */
  async function prune(): Promise<void> {
    if (config.pendingExpiryDays === 0) return;
    if (lastPrune !== undefined && Date.now() - lastPrune < PRUNE_EVERY_MS) return;
    lastPrune = Date.now();
    const erased = await pruneStaleSignups(db, config.pendingExpiryDays);
    // Quiet when nobody was due: on Workers a dispatcher lives one cron minute, and prunes in each.
    if (erased > 0)
      log.info({ msg: 'stale signups erased', erased, olderThanDays: config.pendingExpiryDays });
  }

  /**
   * One round: up to DISPATCH_BATCH_SIZE deliveries (or a second), each handed over by the ledger when a
   * sender is ready to start its SMTP transaction, never before (see createHandout).
   */
  async function sendDeliveries(): Promise<number> {
    // A failed round may have left claims whose answer never came: none reached SMTP, and every result of
    // that round is recorded by now (runOnce records first), so they go back to pending.
    if (strayClaims && recorder.unrecorded === 0) await releaseClaims(db, id);
    strayClaims = true;
    const handout = createHandout({
      db,
      me: id,
      leaseMs: config.leaseMs,
      limit: config.batchSize,
      endsAt: Date.now() + ROUND_MS,
      cursor,
      senders: concurrency,
      recorder,
      stopping: () => stopping,
    });
    /** The mail server could not be reached: senders take no letter while it is so. */
    let unreachable: { error: unknown } | undefined;
    const sender = async () => {
      for (;;) {
        // What a letter may wait for comes before the hand-over (the rate, a connection to the mail
        // server), so that a letter handed over starts its SMTP transaction at once.
        await limiter.take();
        try {
          await mailer.ready?.();
        } catch (error) {
          unreachable ??= { error };
          return;
        }
        const delivery = await handout.next();
        if (!delivery) return;
        const { result, bounce } = await sendLetter(mailer, lettersFor, config, delivery);
        handout.settled(result, bounce);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, sender));
    cursor = handout.cursor;
    await recorder.flush();
    if (handout.failure) throw handout.failure.error;
    strayClaims = false;
    if (unreachable && handout.taken === 0) throw unreachable.error;
    return handout.taken;
  }

  async function runOnce(): Promise<number> {
    await recorder.flush();
    await reap();
    await prune();
    const confirmations = await sendConfirmations({ db, mailer, renderer, config, limiter }, () => stopping);
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
        await recorder.flush();
        await releaseClaims(db, id);
      } catch (error) {
        log.error({ msg: 'could not record the last results at stop', ...describeError(error) });
      }
    },
  };
}
