import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorIn, postForm, tableCounts } from './support/reader.js';
import type { TestService } from './support/service.js';
import { createTestService } from './support/service.js';

/** Issue 26: BLOCK_DISPOSABLE_DOMAINS=true refuses throwaway addresses with 422 invalid_email; off, nothing changes. */
describe('with BLOCK_DISPOSABLE_DOMAINS=true', () => {
  let s: TestService;
  beforeAll(async () => {
    s = await createTestService({ BLOCK_DISPOSABLE_DOMAINS: 'true' });
  });
  afterAll(() => s.close());

  it('refuses an address at a throwaway domain, in JSON and as a page, writing nothing and mailing nobody', async () => {
    const before = await tableCounts(s.database.db);
    const json = await s.subscribeJson('someone@mailinator.com');
    expect(json.status).toBe(422);
    const error = await errorIn(json);
    expect(error.code).toBe('invalid_email');
    expect(error.message).toMatch(/throwaway/);

    const page = await postForm(s, '/subscribe', { email: 'Someone@Sub.Mailinator.COM' });
    expect(page.status).toBe(422);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(await page.text()).toContain('throwaway');

    await s.drain();
    expect(await tableCounts(s.database.db)).toEqual(before);
    expect(s.smtp.received).toHaveLength(0);
  });

  it('accepts an ordinary address', async () => {
    expect((await s.subscribeJson('reader@example.org')).status).toBe(202);
    await s.drain();
    expect(s.smtp.to('reader@example.org')).toHaveLength(1);
  });
});

describe('with BLOCK_DISPOSABLE_DOMAINS unset', () => {
  let s: TestService;
  beforeAll(async () => {
    s = await createTestService();
  });
  afterAll(() => s.close());

  it('accepts a throwaway address as any other', async () => {
    expect((await s.subscribeJson('someone@mailinator.com')).status).toBe(202);
    await s.drain();
    expect(s.smtp.to('someone@mailinator.com')).toHaveLength(1);
  });
});
