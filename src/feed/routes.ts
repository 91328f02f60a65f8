import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { AppEnv, Deps } from '../deps.js';
import { essayWithSendout } from '../essays/routes.js';
import { findEssay, sendoutProgress } from '../essays/service.js';
import { AppError } from '../http/errors.js';
import {
  apiError,
  json,
  publisherErrors,
  publisherSecurity,
  tooLarge,
  unavailable,
} from '../http/openapi.js';
import { publisherAuth } from '../http/publisher-auth.js';

const sentEntry = essayWithSendout
  .extend({ entry: z.object({ id: z.string(), url: z.string().nullable() }) })
  .openapi('FeedEntrySent');

const sendEntryRoute = createRoute({
  method: 'post',
  path: '/api/feed/entries/{id}/send',
  tags: ['Essays'],
  summary: 'Send an entry the feed watcher recorded without sending',
  security: publisherSecurity,
  request: {
    params: z.object({
      id: z.string().openapi({
        param: { name: 'id', in: 'path' },
        description: 'The entry’s id (guid/id) or link, percent-encoded.',
      }),
    }),
  },
  responses: {
    200: json(sentEntry, 'Already sent.'),
    202: json(sentEntry, 'Sent.'),
    ...publisherErrors,
    404: apiError('No feed watched, or no such entry.'),
    ...tooLarge(apiError),
    422: apiError('The entry has no usable link or title (`invalid_input`).'),
    ...unavailable(apiError),
  },
});

/** The publisher's opt-in: send an entry the feed watcher recorded without sending. */
export function feedRoutes(deps: Deps): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>();
  app.use('/api/feed/*', publisherAuth(deps));

  // {id} is the entry's id (guid/id) or its link, percent-encoded as one path segment.
  app.openapi(sendEntryRoute, async (c) => {
    const { feedUrl } = deps.config;
    if (!feedUrl) throw new AppError('not_found', 'No feed is watched: set FEED_URL to the site’s feed.');
    const id = c.req.valid('param').id.slice(0, 4000);
    // The watcher's feed parser (feedsmith, ~6 MB resident) is loaded by the services that watch a feed.
    const { sendFeedEntry } = await import('./watcher.js');
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
