import { sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';

/**
 * Waking dispatchers in other processes. A dispatcher polls the database (DISPATCH_POLL_MS); on PostgreSQL
 * it also LISTENs on this channel, and whoever queues work NOTIFYs it, so a send-out or a confirmation
 * email starts at once in a worker too, not a poll later. A notification lost (a crash, a reconnect) only
 * costs that wait: the poll is still the floor.
 */
export const WORK_CHANNEL = 'oneletter_work';

/**
 * Tells every listening dispatcher that work was queued. Committed without waiting for the disk
 * (synchronous_commit off for this one statement's transaction): a notification carries nothing to lose.
 */
export async function announceWork(db: Db): Promise<void> {
  await db.execute(sql`
    select pg_notify(${WORK_CHANNEL}, '') where set_config('synchronous_commit', 'off', true) = 'off'`);
}

/**
 * The kick the HTTP side calls when it queued work: this process's dispatcher wakes at once; the others are
 * told through the database at most once every `everyMs`. A burst of subscriptions costs one NOTIFY rather
 * than one each (PostgreSQL commits notifying transactions one at a time, under one lock for them all).
 */
export function createWaker(options: {
  wakeLocal: () => void;
  /** Omitted where no other process can be listening (the embedded database). */
  announce?: () => Promise<void>;
  everyMs?: number;
  onError?: (error: unknown) => void;
}): () => void {
  const { wakeLocal, announce } = options;
  const everyMs = options.everyMs ?? 100;
  let scheduled = false;
  let last = Number.NEGATIVE_INFINITY;
  const send = () => {
    scheduled = false;
    last = Date.now();
    announce?.().catch((error) => options.onError?.(error));
  };
  return () => {
    wakeLocal();
    if (!announce || scheduled) return;
    scheduled = true;
    const wait = last + everyMs - Date.now();
    if (wait <= 0) queueMicrotask(send);
    else setTimeout(send, wait).unref?.();
  };
}
