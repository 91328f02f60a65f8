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
