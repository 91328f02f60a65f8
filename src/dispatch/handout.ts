import type { Db } from '../db/client.js';
import type { DeliveryKey, DeliveryResult, SendingDelivery } from './queries.js';
import { claimForSending } from './queries.js';
import type { Recorder } from './recorder.js';

export interface HandoutOptions {
  db: Db;
  me: string;
  leaseMs: number;
  /** Rows to go through in this round at most (skipped ones count). */
  limit: number;
  /** Date.now() after which the round claims no more. */
  endsAt: number;
  /** Where the last claim of the previous round ended. */
  cursor?: DeliveryKey;
  /** Senders: letters in SMTP's hands at once at most. */
  senders: number;
  /** Its results go with each claim. */
  recorder: Recorder;
  stopping(): boolean;
}

/**
 * Hands deliveries to senders that are ready to start an SMTP transaction, and to no one else: a claim takes
 * exactly as many deliveries as there are senders waiting, so every delivery `sending` is one whose SMTP
 * transaction starts now (nothing is claimed ahead). That is what makes the two promises of a send-out under
 * fire hold: the subscriber's status is checked in the statement that hands the letter over (claimForSending),
 * and after a crash `sending` means "SMTP may have it" for every row it marks unknown.
 * A claim goes when half the senders are ready (or all that are not busy), so that each statement hands
 * over several letters and records the results of as many (one statement, one commit); two claims may be
 * under way at once, so that the senders ready while one is don't wait for it to come back.
 */
export function createHandout(options: HandoutOptions) {
  const { db, me, leaseMs, recorder } = options;
  /** Senders ready for a claim to go. */
  const enough = Math.ceil(options.senders / 2);
  /** Senders with a letter in hand. */
  let busy = 0;
  const waiting: ((delivery: SendingDelivery | undefined) => void)[] = [];
  /** Claims under way: two at most, each for senders ready now. */
  let claiming = 0;
  let done = false;
  let taken = 0;
  let cursor = options.cursor;
  /** The claim started from the front of the ledger: finding nothing there means there is nothing. */
  let fromFront = cursor === undefined;
  let failure: { error: unknown } | undefined;

  function finish(): void {
    done = true;
    for (const give of waiting.splice(0)) give(undefined);
  }

  async function claim(count: number): Promise<SendingDelivery[]> {
    const batch = recorder.take();
    let found: Awaited<ReturnType<typeof claimForSending>>;
    try {
      found = await claimForSending(db, me, count, leaseMs, cursor, batch.results);
      batch.settle(true);
    } catch (error) {
      batch.settle(false);
      throw error;
    }
    if (found.taken === 0 && !fromFront) {
      // The end of the ledger: retries and released claims wait at its front.
      cursor = undefined;
      fromFront = true;
      found = await claimForSending(db, me, count, leaseMs);
    }
    if (found.taken === 0) {
      done = true;
      return [];
    }
    taken += found.taken;
    // With two claims under way, the one that went further sets where the next starts.
    if (
      found.last &&
      (!cursor ||
        found.last.essayId > cursor.essayId ||
        (found.last.essayId === cursor.essayId && found.last.subscriberId > cursor.subscriberId))
    )
      cursor = found.last;
    return found.sending;
  }

  function pump(): void {
    if (claiming >= 2 || waiting.length === 0) return;
    if (done || options.stopping() || taken >= options.limit || Date.now() >= options.endsAt) {
      finish();
      return;
    }
    if (waiting.length < enough && busy + claiming > 0) return;
    claiming++;
    const senders = waiting.splice(0);
    claim(senders.length).then(
      (deliveries) => {
        claiming--;
        // Senders left without a delivery (some rows were skipped) ask again, first in line.
        waiting.unshift(...senders.slice(deliveries.length));
        busy += deliveries.length;
        for (const [i, delivery] of deliveries.entries()) senders[i]?.(delivery);
        pump();
      },
      (error: unknown) => {
        claiming--;
        failure ??= { error };
        for (const give of senders) give(undefined);
        finish();
      },
    );
  }

  return {
    /** The next delivery to send now, or undefined when the round is over. */
    next(): Promise<SendingDelivery | undefined> {
      if (done) return Promise.resolve(undefined);
      return new Promise((resolve) => {
        waiting.push(resolve);
        pump();
      });
    },
    /** A sender is done with its letter: its result goes with the next claim. */
    settled(result: DeliveryResult, bounce: boolean): void {
      busy--;
      recorder.add(result, bounce);
      pump();
    },
    /** Rows this round went through, where its last claim ended, and the claim that failed (database away). */
    get taken() {
      return taken;
    },
    get cursor() {
      return cursor;
    },
    get failure() {
      return failure;
    },
  };
}
