import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { AppEnv, Deps } from '../deps.js';
import { jsonBody } from '../http/body.js';
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
import { sendoutView } from '../list/schemas.js';
import type { EssayView } from './service.js';
import { essayInput, findEssay, publish, resendUnknown, SLUG_SHAPE, sendoutProgress } from './service.js';

export const essayView = z
  .object({
    slug: z.string(),
    title: z.string(),
    url: z.string(),
    summary: z.string().nullable(),
    publishedAt: z.string().openapi({ format: 'date-time' }),
  })
  .openapi('Essay');

export const essayWithSendout = z
  .object({ essay: essayView, sendout: sendoutView })
  .openapi('EssayWithSendout');

/** A slug in a path: one of another shape names no essay (404), so it is described, not refused. */
const slugParam = z.object({
  slug: z.string().openapi({ param: { name: 'slug', in: 'path' }, pattern: SLUG_SHAPE.source }),
});

const noEssay = apiError('No essay has that slug.');

const publishRoute = createRoute({
  method: 'post',
  path: '/api/essays',
  tags: ['Essays'],
  summary: 'Publish an essay and start its send-out',
  description:
    'Every subscriber confirmed now gets one letter. The same slug again changes nothing and answers 200.',
  security: publisherSecurity,
  request: { body: { required: true, content: { 'application/json': { schema: essayInput } } } },
  responses: {
    200: json(essayWithSendout, 'Already published: its send-out.'),
    202: json(essayWithSendout, 'Published: the send-out has started.'),
    400: apiError('Not JSON (`malformed_json`).'),
    ...publisherErrors,
    ...tooLarge(apiError),
    415: apiError('Not sent as application/json (`unsupported_media_type`).'),
    422: apiError('A field is not valid (`invalid_input`); the message names it.'),
    ...unavailable(apiError),
  },
});

const essayRoute = createRoute({
  method: 'get',
  path: '/api/essays/{slug}',
  tags: ['Essays'],
  summary: 'An essay and its send-out progress',
  security: publisherSecurity,
  request: { params: slugParam },
  responses: {
    200: json(essayWithSendout, 'The essay.'),
    ...publisherErrors,
    404: noEssay,
    ...unavailable(apiError),
  },
});

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
  security: publisherSecurity,
  request: { params: slugParam },
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
    ...publisherErrors,
    404: noEssay,
    ...tooLarge(apiError),
    ...unavailable(apiError),
  },
});

/** The publisher's side: publish an essay, follow its send-out, resend the letters whose outcome is unknown. */
export function essayRoutes(deps: Deps): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>();
  const db = deps.database.db;
  app.use('/api/*', publisherAuth(deps));

  app.openapi(
    {
      ...publishRoute,
      middleware: [jsonBody('the essay', '{"slug":…,"title":…,"url":…,"summary":…}')],
    },
    async (c) => {
      const { essay, created } = await publish(db, c.req.valid('json'));
      if (created) {
        deps.log.info({ msg: 'essay published', slug: essay.slug });
        deps.kick?.();
      }
      const sendout = await sendoutProgress(db, essay.id);
      return c.json({ essay: publicEssay(essay), sendout }, created ? 202 : 200);
    },
  );

  app.openapi(essayRoute, async (c) => {
    const essay = await essayBySlug(c.req.valid('param').slug);
    return c.json({ essay: publicEssay(essay), sendout: await sendoutProgress(db, essay.id) }, 200);
  });

  app.openapi(resendUnknownRoute, async (c) => {
    const essay = await essayBySlug(c.req.valid('param').slug);
    const resent = await resendUnknown(db, essay.id);
    deps.log.info({ msg: 'unknown deliveries resent', slug: essay.slug, resent });
    if (resent > 0) deps.kick?.();
    return c.json({ resent, sendout: await sendoutProgress(db, essay.id) }, 200);
  });

  return app;

  async function essayBySlug(slug: string): Promise<EssayView> {
    // A slug of the wrong shape (a NUL, say, which PostgreSQL can't even compare) names no essay.
    const essay = SLUG_SHAPE.test(slug) ? await findEssay(db, slug) : undefined;
    if (!essay) throw new AppError('not_found', `No essay has the slug "${slug.slice(0, 200)}".`);
    return essay;
  }
}

/** The essay as publishers see it: internal ids stay inside. */
function publicEssay({ id: _id, ...essay }: EssayView): Omit<EssayView, 'id'> {
  return essay;
}
