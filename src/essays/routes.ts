import { Hono } from 'hono';
import type { AppEnv, Deps } from '../deps.js';
import { AppError } from '../errors.js';
import { publisherAuth } from './auth.js';
import type { EssayView } from './service.js';
import { essayInput, findEssay, publish, SLUG_SHAPE, sendoutProgress } from './service.js';

/** The publisher's side: publish an essay and follow its send-out. */
export function essayRoutes(deps: Deps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.use('/api/*', publisherAuth(deps));

  app.post('/api/essays', async (c) => {
    if (!/^application\/(.+\+)?json/i.test(c.req.header('content-type') ?? '')) {
      throw new AppError(
        'unsupported_media_type',
        'Send the essay as JSON with Content-Type: application/json.',
      );
    }
    let body: unknown;
    try {
      body = await c.req.json();
    } catch {
      throw new AppError(
        'malformed_json',
        'The body is not valid JSON. Send {"slug":…,"title":…,"url":…,"summary":…}.',
      );
    }
    const parsed = essayInput.safeParse(body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const field = issue?.path.join('.') || 'body';
      throw new AppError('invalid_input', `${field}: ${issue?.message ?? 'invalid'}`);
    }
    const { essay, created } = await publish(deps.database.db, parsed.data);
    if (created) {
      deps.log.info({ msg: 'essay published', slug: essay.slug });
      deps.kick?.();
    }
    const sendout = await sendoutProgress(deps.database.db, essay.id);
    return c.json({ essay: publicEssay(essay), sendout }, created ? 202 : 200);
  });

  app.get('/api/essays/:slug', async (c) => {
    const slug = c.req.param('slug');
    // A slug of the wrong shape (a NUL, say, which PostgreSQL can't even compare) names no essay.
    const essay = SLUG_SHAPE.test(slug) ? await findEssay(deps.database.db, slug) : undefined;
    if (!essay)
      throw new AppError('not_found', `No essay has the slug "${c.req.param('slug').slice(0, 200)}".`);
    return c.json({ essay: publicEssay(essay), sendout: await sendoutProgress(deps.database.db, essay.id) });
  });

  return app;
}

/** The essay as publishers see it: internal ids stay inside. */
function publicEssay({ id: _id, ...essay }: EssayView): Omit<EssayView, 'id'> {
  return essay;
}
