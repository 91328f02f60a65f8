import { afterEach, describe, expect, it, vi } from 'vitest';
import { createRenderer } from '../src/mail/render.js';
import { loadTemplates } from '../src/mail/templates-fs.js';

/**
 * Issue 23, memory at rest: the first email a process renders (a send-out's, a confirmation) loads LiquidJS.
 * Unless told its locale, LiquidJS asks ICU for the default one as it starts, and that single
 * `Intl.DateTimeFormat()` keeps ~8 MiB resident (ICU's date data and what it builds from it) for the life of
 * the process; our templates are in English and the service formats no date through ICU.
 */
describe('rendering templates', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('asks ICU for no date format: pages and emails render without Intl.DateTimeFormat', async () => {
    const dateFormat = vi.spyOn(Intl, 'DateTimeFormat');
    const renderer = createRenderer(loadTemplates());
    const email = await renderer.email('confirm', {
      siteName: 'Test Essays',
      siteUrl: 'https://example.test',
      confirmUrl: 'https://news.example.test/confirm?token=tok',
    });
    const page = await renderer.page('confirmed', { siteName: 'Test Essays' });
    expect(email.subject).not.toBe('');
    expect(page).toContain('<html');
    expect(dateFormat).not.toHaveBeenCalled();
  });

  it("still writes a template's dates, in English", async () => {
    const renderer = createRenderer({
      'pages/dated.liquid': '{{ at | date: "%A %e %B %Y" }}',
    });
    expect(await renderer.page('dated', { at: '2026-03-04T12:00:00Z' })).toBe('Wednesday  4 March 2026');
  });
});
