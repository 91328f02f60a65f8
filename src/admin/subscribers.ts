import type { Hono } from 'hono';
import type { Deps } from '../deps.js';
import { listSubscribers, subscriberDetail } from '../list/service.js';
import type { AdminEnv } from './page.js';
import { adminPage } from './page.js';

const RESULTS = 50;

/** Searching the list by address, and one subscriber's history: the publisher tools' queries, as pages. */
export function subscriberPages(app: Hono<AdminEnv>, deps: Deps): void {
  const db = deps.database.db;

  app.get('/admin/subscribers', async (c) => {
    const q = (c.req.query('q') ?? '').trim().slice(0, 254);
    const found = await listSubscribers(db, { q: q || undefined, limit: RESULTS });
    return adminPage(c, 'subscribers', {
      title: 'Subscribers',
      q,
      subscribers: found.subscribers,
      more: found.nextCursor !== null,
      limit: RESULTS,
    });
  });

  app.get('/admin/subscribers/:ref', async (c) => {
    const detail = await subscriberDetail(db, c.req.param('ref'));
    return adminPage(c, 'subscriber', { title: detail.subscriber.email, ...detail });
  });
}
