import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rows } from '../src/db/client.js';
import type { TestService } from './support/service.js';
import { createTestService } from './support/service.js';

describe('a confirmation email the mail server defers', () => {
  let s: TestService;

  // A real backoff (1 s ± 20 %: a fraction of a millisecond in it), not the suite's RETRY_BASE_SECONDS=0.
  beforeAll(async () => {
    s = await createTestService({ RETRY_BASE_SECONDS: '1' });
  });
  afterAll(() => s?.close());

  it('is queued again after its backoff, then sent once', async () => {
    let deferred = 0;
    s.smtp.onRecipient = (recipient) =>
      recipient === 'deferred@example.org' && deferred++ === 0
        ? { code: 451, message: '451 4.3.0 Try again later' }
        : undefined;
    expect((await s.subscribeJson('deferred@example.org')).status).toBe(202);

    await s.drain();
    expect(deferred).toBe(1);
    const [queued] = await rows<{ status: string; wait: number }>(
      s.database.db,
      sql`select status::text as status, extract(epoch from not_before - now())::float as wait
          from confirmations`,
    );
    expect(queued?.status).toBe('queued');
    expect(queued?.wait).toBeGreaterThan(0.5);
    expect(queued?.wait).toBeLessThan(1.3);

    await new Promise((resolve) => setTimeout(resolve, (queued?.wait ?? 0) * 1000 + 100));
    await s.drain();
    expect(s.smtp.to('deferred@example.org')).toHaveLength(1);
  });
});
