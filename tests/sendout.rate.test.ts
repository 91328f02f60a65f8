import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addresses, seedSubscribers } from './support/sendout.js';
import type { TestService } from './support/service.js';
import { createTestService } from './support/service.js';
import type { ReceivedEmail } from './support/smtp.js';

/**
 * SEND_RATE is a ceiling an operator sets for their provider's limits. These tests check a lower bound on
 * how long the messages take to arrive (load on the machine can only stretch it), never an upper bound.
 */
const RATE = 20;
const COUNT = 11;
/**
 * COUNT messages at RATE a second: the last one can't start before (COUNT - 1) / RATE seconds have passed.
 * (Measured from before the first request, not between arrivals: the first messages each open a
 * connection, the last reuses one, which would squeeze the gap between arrivals.)
 */
const MIN_ELAPSED_MS = ((COUNT - 1) / RATE) * 1000;

const lastArrival = (emails: ReceivedEmail[]) => Math.max(...emails.map((e) => e.receivedAt));

describe('SEND_RATE', () => {
  let s: TestService;
  beforeAll(async () => {
    s = await createTestService({ SEND_RATE: String(RATE), SEND_CONCURRENCY: '10' });
  });
  afterAll(() => s?.close());

  it('spaces the letters of a send-out to at most SEND_RATE a second', async () => {
    const start = Date.now();
    await seedSubscribers(s.database.db, 'confirmed', addresses('rated', COUNT));
    expect(
      (await s.publish({ slug: 'rated', title: 'Rated', url: 'https://example.org/rated' })).status,
    ).toBe(202);
    await s.drain();
    const letters = await s.smtp.waitFor(COUNT);
    expect(letters).toHaveLength(COUNT);
    expect(lastArrival(letters) - start).toBeGreaterThanOrEqual(MIN_ELAPSED_MS);
  });

  it('counts confirmation emails too, so a burst of sign-ups is spaced the same way', async () => {
    const before = s.smtp.received.length;
    const start = Date.now();
    for (const email of addresses('signup', COUNT)) {
      expect((await s.subscribeJson(email)).status).toBe(202);
    }
    await s.drain();
    const confirmations = (await s.smtp.waitFor(before + COUNT)).slice(before);
    expect(confirmations).toHaveLength(COUNT);
    expect(lastArrival(confirmations) - start).toBeGreaterThanOrEqual(MIN_ELAPSED_MS);
  });
});

// Confirmation emails are looked at between a dispatcher's rounds. A round ends after DISPATCH_BATCH_SIZE
// deliveries or a second, whichever comes first: a slow send-out never holds a confirmation back for long.
describe('a confirmation requested during a slow send-out', () => {
  let s: TestService;
  beforeAll(async () => {
    s = await createTestService({ SEND_RATE: '50', SEND_CONCURRENCY: '4', DISPATCH_BATCH_SIZE: '10000' });
  });
  afterAll(() => s?.close());

  it('goes out before the send-out ends, however many deliveries a round may take', async () => {
    const letters = 100;
    await seedSubscribers(s.database.db, 'confirmed', addresses('slow', letters));
    expect((await s.publish({ slug: 'slow', title: 'Slow', url: 'https://example.org/slow' })).status).toBe(
      202,
    );
    // 100 letters at 50 a second take two seconds at least: the first round ends after one, with letters left.
    const firstRound = s.dispatcher.runOnce();
    expect((await s.subscribeJson('late@example.org')).status).toBe(202);
    expect(await firstRound).toBeLessThan(letters);
    await s.drain();
    const received = await s.smtp.waitFor(letters + 1);
    const confirmation = received.findIndex((e) => e.to === 'late@example.org');
    expect(confirmation).toBeGreaterThanOrEqual(0);
    expect(confirmation, 'the confirmation came after every letter').toBeLessThan(letters);
  });
});
