import type { Hono } from 'hono';
import type { Deps } from '../deps.js';
import { AppError } from '../http/errors.js';
import type { AdminEnv } from './page.js';
import { adminPage } from './page.js';

const SHOWN = 100;

/** The .eml outbox (emails go to files: no SMTP_URL), newest first, each readable: where a newcomer finds the confirmation link. */
export function outboxPages(app: Hono<AdminEnv>, deps: Deps): void {
  const outbox = () => {
    if (!deps.outbox)
      throw new AppError('not_found', 'Emails go to a mail server here (SMTP_URL): there is no outbox.');
    return deps.outbox;
  };

  app.get('/admin/outbox', async (c) => {
    const view = outbox();
    const { emails, total } = await view.list(SHOWN);
    return adminPage(c, 'outbox', { title: 'Outbox', emails, total, shown: SHOWN, dir: view.dir });
  });

  app.get('/admin/outbox/:name', async (c) => {
    const email = await outbox().read(c.req.param('name'));
    if (!email) throw new AppError('not_found', 'No email of the outbox has that name.');
    return adminPage(c, 'outbox-email', { title: email.subject || '(no subject)', email });
  });
}
