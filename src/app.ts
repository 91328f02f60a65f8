import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { Hono, MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { adminHeaders, adminRoutes } from './admin/routes.js';
import { ADMIN_IMPORT_PATH } from './admin/subscribers.js';
import { SES_WEBHOOK_PATH, sesWebhookRoutes } from './bounces/ses.js';
import { PROVIDER_WEBHOOK_PATHS, providerWebhookRoutes } from './bounces/webhooks.js';
import type { AltchaWidgetFile, AppEnv, Deps } from './deps.js';
import { essayRoutes } from './essays/routes.js';
import { feedRoutes } from './feed/routes.js';
import { AppError, onError, redactPath, respondError } from './http/errors.js';
import { DOCS_CSP, invalidInput, json, openApiRoutes } from './http/openapi.js';
import { securityHeaders } from './http/security-headers.js';
import { IMPORT_PATH, subscriberRoutes } from './list/routes.js';
import { subscriptionRoutes } from './reader/routes.js';

/** Where the pages' icon is served (linked from templates/pages/layout.liquid and the dashboard's layout). */
export const FAVICON_PATH = '/favicon.svg';

/** Crawlers may read the form; links from emails, the API and the dashboard are no place for them. */
const ROBOTS_TXT = [
  'User-agent: *',
  'Disallow: /confirm/',
  'Disallow: /unsubscribe/',
  'Disallow: /api/',
  'Disallow: /admin',
  '',
].join('\n');
/** A day: an icon rarely changes, and a browser that kept an old one shows nothing wrong. */
const ICON_CACHE = 'public, max-age=86400';

const healthRoute = createRoute({
  method: 'get',
  path: '/healthz',
  tags: ['Operations'],
  summary: 'The process is up',
  responses: { 200: json(z.object({ status: z.literal('ok') }), 'Up.') },
});

const readyRoute = createRoute({
  method: 'get',
  path: '/readyz',
  tags: ['Operations'],
  summary: 'The database answers',
  responses: {
    200: json(z.object({ status: z.literal('ready'), database: z.literal('reachable') }), 'Ready.'),
    503: json(
      z.object({ status: z.literal('unavailable'), database: z.literal('unreachable'), message: z.string() }),
      'The database does not answer.',
    ),
  },
});

/** Builds the HTTP app over its dependencies. Imports no runtime and no database driver. */
export function createApp(deps: Deps): Hono<AppEnv> {
  // OpenAPIHono: a Hono app that also collects the routes' OpenAPI descriptions (served at /openapi.json).
  // Its defaultHook answers a request its route's schemas refuse, for every route mounted below.
  const app = new OpenAPIHono<AppEnv>({ defaultHook: invalidInput });
  const { config } = deps;
  const ownOrigin = new URL(config.publicUrl).origin;

  app.use(async (c, next) => {
    c.set('deps', deps);
    const started = performance.now();
    await next();
    deps.log.info({
      msg: 'request',
      method: c.req.method,
      path: redactPath(c.req.path),
      status: c.res.status,
      ms: Math.round(performance.now() - started),
    });
  });

  // The API reference page runs a script (served from here, never a CDN); every other page runs none.
  app.use('/docs', async (c, next) => {
    await next();
    c.header('Content-Security-Policy', DOCS_CSP);
  });

  // The dashboard runs its own script and frames its letter preview: a CSP of its own, set after this one.
  app.use('/admin', adminHeaders(config));
  app.use('/admin/*', adminHeaders(config));

  app.use(securityHeaders(ownOrigin, Boolean(config.altchaHmacKey)));

  app.use(limitBody(config.bodyLimitBytes));

  app.openapi(healthRoute, (c) => c.json({ status: 'ok' as const }, 200));
  app.openapi(readyRoute, async (c) => {
    try {
      await deps.database.ping();
      return c.json({ status: 'ready' as const, database: 'reachable' as const }, 200);
    } catch {
      return c.json(
        {
          status: 'unavailable' as const,
          database: 'unreachable' as const,
          message: 'The database does not answer; try again soon.',
        },
        503,
      );
    }
  });

  app.get('/assets/style.css', (c) => {
    c.header('Cache-Control', 'public, max-age=3600');
    return c.body(deps.renderer.asset('pages/style.css') ?? '', 200, {
      'Content-Type': 'text/css; charset=utf-8',
    });
  });

  // The form's enhancement, loaded by the site's pages (other origins): cacheable, no dependencies.
  app.get('/form.js', (c) => {
    c.header('Cache-Control', 'public, max-age=3600');
    c.header('Cross-Origin-Resource-Policy', 'cross-origin');
    return c.body(deps.renderer.asset('pages/form.js') ?? '', 200, {
      'Content-Type': 'text/javascript; charset=utf-8',
    });
  });

  // The ALTCHA widget (ALTCHA_HMAC_KEY set), from the npm package: loaded by our pages and, through /form.js,
  // by the site's (other origins: CORS, so that the script can be imported and the worker fetched).
  app.get('/altcha/:file{widget\\.js|widget\\.css|worker\\.js}', async (c) => {
    const file = c.req.param('file') as AltchaWidgetFile;
    const bytes = config.altchaHmacKey ? await deps.altchaWidget?.(file) : undefined;
    if (!bytes) throw new AppError('not_found', 'Proof of work is off on this service.');
    c.header('Cache-Control', 'public, max-age=3600');
    c.header('Cross-Origin-Resource-Policy', 'cross-origin');
    c.header('Access-Control-Allow-Origin', '*');
    const type = file.endsWith('.css') ? 'text/css' : 'text/javascript';
    return c.body(bytes as Uint8Array<ArrayBuffer>, 200, { 'Content-Type': `${type}; charset=utf-8` });
  });

  // The icon every page links to (templates/pages/favicon.svg: a site owner may put their own there).
  app.get(FAVICON_PATH, (c) => {
    const icon = deps.renderer.asset('pages/favicon.svg');
    c.header('Cache-Control', ICON_CACHE);
    if (!icon) return c.body(null, 204);
    return c.body(icon, 200, { 'Content-Type': 'image/svg+xml; charset=utf-8' });
  });

  // Browsers ask for /favicon.ico on their own where nothing names an icon (a JSON answer, /docs). A 404
  // there is an error in their console on every such visit; an empty answer is not, and is kept.
  app.get('/favicon.ico', (c) => {
    c.header('Cache-Control', ICON_CACHE);
    return c.body(null, 204);
  });

  // The reader's pages are per person (links from emails) and carry noindex; the API and dashboard are private.
  app.get('/robots.txt', (c) => {
    c.header('Cache-Control', 'public, max-age=86400');
    return c.text(ROBOTS_TXT);
  });

  app.route('/', subscriptionRoutes(deps));
  app.route('/', essayRoutes(deps));
  app.route('/', feedRoutes(deps));
  app.route('/', subscriberRoutes(deps));
  app.route('/', sesWebhookRoutes(deps));
  app.route('/', providerWebhookRoutes(deps));
  app.route('/', adminRoutes(deps));
  openApiRoutes(app, deps);

  app.notFound((c) =>
    respondError(
      c,
      new AppError('not_found', 'There is nothing at this address. Check the link and try again.'),
    ),
  );
  app.onError(onError);
  return app;
}

/**
 * Refuses bodies over `maxSize` bytes (413). A body whose Content-Length says its size (the HTTP parser
 * holds it to that) is judged by the header alone, and GET and HEAD carry none, so the body is left
 * unread for the route to read once, directly (on Node, touching the request's body stream first would
 * build a whole fetch Request and a web stream for it on every request). Otherwise (chunked), Hono's
 * bodyLimit counts the bytes as they come.
 */
function limitBody(maxSize: number): MiddlewareHandler<AppEnv> {
  // The subscriber import is streamed and has its own, larger limit (IMPORT_LIMIT_BYTES); webhooks have theirs.
  const tooLarge = () => {
    throw new AppError(
      'payload_too_large',
      `The request body is larger than ${maxSize} bytes. Send only the fields the form needs.`,
    );
  };
  const counted = bodyLimit({ maxSize, onError: tooLarge });
  return async (c, next) => {
    const method = c.req.method;
    if (method === 'GET' || method === 'HEAD') return next();
    if (c.req.path === IMPORT_PATH || c.req.path === ADMIN_IMPORT_PATH || c.req.path === SES_WEBHOOK_PATH)
      return next();
    if (PROVIDER_WEBHOOK_PATHS.includes(c.req.path)) return next();
    const length = c.req.header('content-length');
    if (length !== undefined && c.req.header('transfer-encoding') === undefined) {
      return Number.parseInt(length || '0', 10) > maxSize ? tooLarge() : next();
    }
    return counted(c, next);
  };
}
