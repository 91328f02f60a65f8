import { isDatabaseUnavailable } from '../http/errors.js';
import type { Db } from './client.js';

/** Inputs given to one batch at most (a batch forms while the last one runs). */
const MAX_BATCH = 500;
/** A batch running this long no longer holds back the next. */
const STUCK_MS = 20;
/** Batches of one kind running at once at most, stuck ones included. */
const MAX_RUNNING = 4;

/**
 * Runs a statement for many requests at once: a call that finds no batch running starts one at once,
 * alone; calls made while a batch runs wait for it, and go together in the next. Under load, a statement
 * per request mostly costs PostgreSQL its per-statement work (a round trip, a commit, a lock queue on a row
 * every request updates); one per batch pays that once. Nothing waits on a timer: at low load every call
 * is a batch of one.
 *
 * `run` answers each input, in order. If a batch fails, each of its inputs is tried again alone, so one
 * input that makes the statement fail fails no other; if it failed because the database is away, they all fail. A batch that has run for STUCK_MS with nothing else
 * moving (an insert that merges an index's pending list can take hundreds of ms) holds back the calls
 * after it no longer: they go in a batch of their own beside it. One queue per database (a cache: what
 * is counted or written lives in the database).
 */
export function coalesced<I, O>(
  run: (db: Db, inputs: I[]) => Promise<O[]>,
): (db: Db, input: I) => Promise<O> {
  const queues = new WeakMap<Db, (input: I) => Promise<O>>();
  return (db, input) => {
    let queue = queues.get(db);
    if (!queue) {
      queue = createQueue((inputs) => run(db, inputs));
      queues.set(db, queue);
    }
    return queue(input);
  };
}

interface Waiting<I, O> {
  input: I;
  resolve(output: O): void;
  reject(error: unknown): void;
}

function createQueue<I, O>(run: (inputs: I[]) => Promise<O[]>): (input: I) => Promise<O> {
  const waiting: Waiting<I, O>[] = [];
  /** When each batch running now started. */
  const running = new Set<{ started: number }>();
  /** True when no batch runs, or every one has run for STUCK_MS. */
  const allStuck = () => {
    const now = performance.now();
    for (const batch of running) if (now - batch.started <= STUCK_MS) return false;
    return true;
  };

  async function runBatch(batch: Waiting<I, O>[]): Promise<void> {
    try {
      const outputs = await run(batch.map((w) => w.input));
      for (const [i, w] of batch.entries()) w.resolve(outputs[i] as O);
    } catch (error) {
      // The database away fails every input alike, and at once: tried one by one, the last would wait for
      // each of the others to time out first.
      if (batch.length === 1 || isDatabaseUnavailable(error)) for (const w of batch) w.reject(error);
      else for (const w of batch) await runBatch([w]);
    }
  }

  /** Runs batches while calls wait, until another batch that is not stuck can take them. */
  async function drain(): Promise<void> {
    while (waiting.length > 0) {
      const batch = { started: performance.now() };
      running.add(batch);
      await runBatch(waiting.splice(0, MAX_BATCH));
      running.delete(batch);
      if (!allStuck()) return;
    }
  }

  return (input) =>
    new Promise<O>((resolve, reject) => {
      waiting.push({ input, resolve, reject });
      if (running.size < MAX_RUNNING && allStuck()) void drain();
    });
}
