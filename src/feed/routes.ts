import { Hono } from 'hono';
import type { AppEnv, Deps } from '../deps.js';
import { findEssay, sendoutProgress } from '../essays/service.js';
import { AppError } from '../http/errors.js';
import { publisherAuth } from '../http/publisher-auth.js';
import { sendFeedEntry } from './watcher.js';

/** The publisher's opt-in: send an entry the feed watcher recorded without sending. */
export function feedRoutes(deps: Deps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.use('/api/feed/*', publisherAuth(deps));

  // :id is the entry's id (guid/id) or its link, percent-encoded as one path segment.
  app.post('/api/feed/entries/:id/send', async (c) => {
    const { feedUrl } = deps.config;
    if (!feedUrl) throw new AppError('not_found', 'No feed is watched: set FEED_URL to the site’s feed.');
    const id = c.req.param('id').slice(0, 4000);
    const result = await sendFeedEntry({ db: deps.database.db, feedUrl, log: deps.log, kick: deps.kick }, id);
    if (result.outcome === 'not_found' || !result.entry) {
      throw new AppError(
        'not_found',
        'The feed watcher has seen no entry with this id or link. It records entries at each poll: check FEED_URL and the id.',
      );
    }
    if (result.outcome === 'invalid') {
      throw new AppError(
        'invalid_input',
        'This entry has no usable http(s) link or title in the feed, so it can’t be sent as an essay.',
      );
    }
    const essay = await findEssay(deps.database.db, result.entry.slug);
    if (!essay) throw new Error(`essay ${result.entry.slug} missing after sending its feed entry`);
    const { id: _id, ...shown } = essay;
    return c.json(
      {
        entry: { id: result.entry.id, url: result.entry.url },
        essay: shown,
        sendout: await sendoutProgress(deps.database.db, essay.id),
      },
      result.outcome === 'published' ? 202 : 200,
    );
  });

  return app;
}
