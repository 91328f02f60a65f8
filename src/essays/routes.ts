import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { AppEnv, Deps } from '../deps.js';
import { AppError } from '../http/errors.js';
import { publisherAuth } from '../http/publisher-auth.js';
import { errorBody, json, sendoutView } from '../list/schemas.js';
import type { EssayView } from './service.js';
import { essayInput, findEssay, publish, resendUnknown, SLUG_SHAPE, sendoutProgress } from './service.js';

const resendUnknownRoute = createRoute({
  method: 'post',
  path: '/api/essays/{slug}/resend-unknown',
  tags: ['Essays'],
  summary: 'Send the letters whose outcome is unknown again',
  description:
    'Only on request, never by the service itself. A delivery is `unknown` when the mail server may have ' +
    'taken the letter but never said so (a crash, a connection lost after the message was handed over): ' +
    'some of those readers may get the essay twice. Each goes back to the queue with the same Message-ID, ' +
    'and the ledger counts the resend. Subscribers no longer confirmed, and erased ones, are not resent. ' +
    'With nothing unknown, nothing changes: `resent` is 0. No request body.',
  security: [{ publisherToken: [] }],
  request: {
    params: z.object({
      // A slug of another shape names no essay (404), as for GET /api/essays/{slug}.
      slug: z.string().openapi({ param: { name: 'slug', in: 'path' }, pattern: SLUG_SHAPE.source }),
    }),
  },
  responses: {
    200: json(
      z
        .object({
          resent: z
            .number()
            .int()
            .openapi({ description: 'Deliveries queued again; 0 when none was unknown.' }),
          sendout: sendoutView,
        })
        .openapi('ResendOutcome'),
      'Queued again (or nothing to resend); the send-out as it stands now.',
    ),
    401: json(errorBody, 'No or wrong publisher token.'),
    404: json(errorBody, 'No essay has that slug.'),
  },
});

/** The publisher's side: publish an essay, follow its send-out, resend the letters whose outcome is unknown. */
export function essayRoutes(deps: Deps): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>();
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

  app.openapi(resendUnknownRoute, async (c) => {
    const { slug } = c.req.valid('param');
    const essay = SLUG_SHAPE.test(slug) ? await findEssay(deps.database.db, slug) : undefined;
    if (!essay) throw new AppError('not_found', `No essay has the slug "${slug.slice(0, 200)}".`);
    const resent = await resendUnknown(deps.database.db, essay.id);
    deps.log.info({ msg: 'unknown deliveries resent', slug: essay.slug, resent });
    if (resent > 0) deps.kick?.();
    return c.json({ resent, sendout: await sendoutProgress(deps.database.db, essay.id) }, 200);
  });

  return app;
}

/** The essay as publishers see it: internal ids stay inside. */
function publicEssay({ id: _id, ...essay }: EssayView): Omit<EssayView, 'id'> {
  return essay;
}
