import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestService } from './support/service.js';
import { confirmTokenIn, createTestService, PUBLIC_URL, unsubscribeTokenIn } from './support/service.js';

describe('a reader subscribes, confirms, unsubscribes and comes back', () => {
  let s: TestService;
  beforeAll(async () => {
    s = await createTestService({ CONFIRM_RESEND_MINUTES: '0' });
  });
  afterAll(() => s?.close());

  it('goes through the whole lifecycle over HTTP and real SMTP', async () => {
    const res = await s.subscribeJson('  Reader@Example.org ', 'Ann');
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ status: 'pending' });

    await s.drain();
    const [mail] = await s.smtp.waitFor(1);
    expect(mail?.to).toBe('reader@example.org');
    expect(mail?.parsed.subject).toContain('Confirm');
    const token = confirmTokenIn(mail?.parsed.text);
    expect(mail?.parsed.html).toContain(`${PUBLIC_URL}/confirm/${token}`);

    // A GET (a link scanner) changes nothing.
    const page = await s.app.request(`/confirm/${token}`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('method="post"');

    const publish1 = await s.publish({ slug: 'before', title: 'Before', url: 'https://example.org/before' });
    expect(((await publish1.json()) as { sendout: { total: number } }).sendout.total).toBe(0);

    const confirmed = await s.app.request(`/confirm/${token}`, { method: 'POST' });
    expect(confirmed.status).toBe(200);
    expect(await confirmed.text()).toContain('subscribed');
    // Twice is fine.
    expect((await s.app.request(`/confirm/${token}`, { method: 'POST' })).status).toBe(200);

    const publish2 = await s.publish({ slug: 'after', title: 'After', url: 'https://example.org/after' });
    expect(publish2.status).toBe(202);
    await s.drain();
    const [, letter] = await s.smtp.waitFor(2);
    expect(letter?.parsed.subject).toBe('After');
    const unsubscribe = unsubscribeTokenIn(letter?.raw);

    const oneClick = await s.app.request(`/unsubscribe/${unsubscribe}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'List-Unsubscribe=One-Click',
    });
    expect(oneClick.status).toBe(200);

    await s.publish({ slug: 'later', title: 'Later', url: 'https://example.org/later' });
    await s.drain();
    expect(s.smtp.received).toHaveLength(2);

    const again = await s.subscribeJson('reader@example.org');
    expect(again.status).toBe(202);
    await s.drain();
    const [, , reconfirm] = await s.smtp.waitFor(3);
    expect(reconfirm?.parsed.subject).toContain('Confirm');
  });
});
