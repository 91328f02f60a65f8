import type { Db } from '../db/client.js';
import type { DeliveryResult } from './queries.js';
import { markBounced, recordResults } from './queries.js';

/**
 * The SMTP outcomes not yet in the ledger. They go with the next hand-over (claimForSending records them in
 * the same statement), or with flush() at the end of a round. A result the database could not take (it is
 * away) is kept and written with the next: never dropped, or its delivery would end `unknown`.
 */
export function createRecorder(db: Db, me: string) {
  const waiting: DeliveryResult[] = [];
  /** Subscribers whose address was refused for good, to mark bounced at the end of the round. */
  const bounced = new Set<number>();
  /** Results taken by a statement under way. */
  let taken = 0;

  return {
    /** Results not yet in the ledger. */
    get unrecorded(): number {
      return waiting.length + taken;
    },
    add(result: DeliveryResult, bounce: boolean): void {
      waiting.push(result);
      if (bounce) bounced.add(result.subscriberId);
    },
    /** Takes the waiting results for a statement to record; `settle` says whether it did. */
    take(): { results: DeliveryResult[]; settle(recorded: boolean): void } {
      const results = waiting.splice(0);
      taken += results.length;
      return {
        results,
        settle(recorded) {
          taken -= results.length;
          if (!recorded) waiting.unshift(...results);
        },
      };
    },
    /** Writes everything waiting; rejects if the database could not take it (kept for the next try). */
    async flush(): Promise<void> {
      const batch = this.take();
      try {
        await recordResults(db, me, batch.results);
        batch.settle(true);
      } catch (error) {
        batch.settle(false);
        throw error;
      }
      if (bounced.size === 0) return;
      const ids = [...bounced];
      await markBounced(db, ids);
      for (const id of ids) bounced.delete(id);
    },
  };
}

export type Recorder = ReturnType<typeof createRecorder>;
