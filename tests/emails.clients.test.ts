import { doIUseEmail } from '@jsx-email/doiuse-email';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config.js';
import { confirmationEmail, essayLetters } from '../src/mail/messages.js';
import { createRenderer } from '../src/mail/render.js';
import { loadTemplates } from '../src/mail/templates-fs.js';

/**
 * Issue 23: the emails as Outlook for Windows and Gmail show them, checked against caniemail's data
 * (doiuse-email): nothing they don't support (rem units, border-radius, padding on a link as a button).
 */
const config = parseConfig({
  PUBLIC_URL: 'https://news.example.test',
  SITE_URL: 'https://example.test',
  SITE_NAME: 'Test Essays',
  PUBLISHER_TOKEN: 'a-token-of-16-chars+',
});
const renderer = createRenderer(loadTemplates());
const clients = ['outlook.windows', 'gmail.*'] as const;

async function emails() {
  const confirmation = await confirmationEmail(
    config,
    renderer,
    { email: 'ann@example.org', name: 'Ann' },
    'tok',
  );
  const letters = essayLetters(config, renderer, {
    id: 1,
    slug: 'on-walking',
    title: 'On walking',
    url: 'https://example.test/on-walking',
    summary: 'Why we walk.',
  });
  const letter = await letters.email({
    id: 7,
    email: 'bo@example.org',
    name: 'Bo',
    unsubscribeToken: 'u'.repeat(43),
  });
  return { confirmation, letter };
}

describe('the emails in the mail clients readers use', () => {
  it('use no HTML or CSS that Outlook for Windows or Gmail does not support', async () => {
    for (const [name, email] of Object.entries(await emails())) {
      const report = doIUseEmail(email.html, { emailClients: [...clients] });
      expect(report.success ? [] : report.errors, name).toEqual([]);
    }
  });

  it("link to the site in the text part as in the HTML part, the letter's and the confirmation's", async () => {
    for (const [name, email] of Object.entries(await emails())) {
      // The site itself, not only the essay's page on it.
      expect(email.text, name).toMatch(/https:\/\/example\.test(?![\w/.-])/);
      expect(email.html, name).toContain('href="https://example.test"');
    }
  });
});
