import type { OpenAPIHono } from '@hono/zod-openapi';
import { z } from '@hono/zod-openapi';
import type { AppEnv, Deps } from '../deps.js';
import { AppError } from './errors.js';

/**
 * The one way to define an HTTP route: `createRoute` (its request schemas and every answer it gives) and
 * `app.openapi` (mounted with the validators those schemas make). Each feature folder describes its own
 * routes with the pieces below; app.ts gathers them into the document at /openapi.json, so the document
 * is what the service does. The dashboard's HTML pages (/admin) and static files are plain routes, and not
 * in the document.
 */

/** What the reference page may load: its own script and the document, from this service only. */
export const DOCS_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  // Swagger UI sets styles on its elements at run time.
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join('; ');

/** The body of every error answer: `{"error":{"code":…,"message":…}}`. */
export const errorBody = z
  .object({
    error: z.object({
      code: z.string().openapi({ example: 'invalid_input' }),
      message: z.string(),
    }),
  })
  .openapi('Error');

/** A JSON answer: its schema and what it means. */
export const json = <T extends z.ZodType>(schema: T, description: string) => ({
  content: { 'application/json': { schema } },
  description,
});

const htmlPage = z.string().openapi({ description: 'An HTML page for the reader.' });

/** A page for a browser. */
export const page = (description: string) => ({
  content: { 'text/html': { schema: htmlPage } },
  description,
});

/** A JSON answer for clients that ask for JSON (see wantsJson), and a page with the same news for browsers. */
export const jsonOrPage = <T extends z.ZodType>(schema: T, description: string) => ({
  content: { 'application/json': { schema }, 'text/html': { schema: htmlPage } },
  description,
});

/** An error on a route only programs call (/api/*, /webhooks/*): always JSON. */
export const apiError = (description: string) => json(errorBody, description);

/** An error on a route browsers call too: JSON for clients that ask for it, else an error page. */
export const readerError = (description: string) => jsonOrPage(errorBody, description);

const retryAfter = {
  'Retry-After': {
    description: 'Seconds to wait before trying again.',
    schema: { type: 'integer' as const, minimum: 1 },
  },
};

/** 429 or 503: an error with the seconds to wait in Retry-After. */
export const withRetryAfter = <T extends { description: string }>(answer: T) => ({
  ...answer,
  headers: retryAfter,
});

/** Every /api/* route: `Authorization: Bearer <PUBLISHER_TOKEN>`. */
export const publisherSecurity = [{ publisherToken: [] }];

/** What publisherAuth answers on every /api/* route before the route itself runs. */
export const publisherErrors = {
  401: apiError('No or wrong publisher token (`unauthorized`).'),
  429: withRetryAfter(
    apiError('Too many wrong publisher tokens from this client (`rate_limited`); wait Retry-After seconds.'),
  ),
};

/** Any route that reads or writes the database, while it can't be reached. */
export const unavailable = <A extends { description: string }>(error: (description: string) => A) => ({
  503: withRetryAfter(error('The database can’t be reached right now (`database_unavailable`).')),
});

/** Any request with a body over BODY_LIMIT_BYTES (src/app.ts limitBody). */
export const tooLarge = <A>(error: (description: string) => A) => ({
  413: error('The body is larger than BODY_LIMIT_BYTES (`payload_too_large`).'),
});

type Issue = { path?: readonly (PropertyKey | { key: PropertyKey })[]; message: string };

/** The first issue of a failed validation as the client's error: `invalid_input`, naming the field. */
export function inputError(issues: readonly Issue[], whole = 'input'): AppError {
  const issue = issues[0];
  const field = issue?.path?.map((p) => String(typeof p === 'object' ? p.key : p)).join('.') || whole;
  return new AppError('invalid_input', `${field}: ${issue?.message ?? 'invalid'}`);
}

/**
 * The defaultHook of the app (OpenAPIHono): a query, path parameter or body the route's schema refuses is
 * answered like every other bad input, 422 `invalid_input` with the first issue.
 */
export function invalidInput(
  result: { success: true } | { success: false; error: { issues: readonly Issue[] }; target: string },
): void {
  if (result.success) return;
  throw inputError(
    result.error.issues,
    result.target === 'json' || result.target === 'form' ? 'body' : 'input',
  );
}

/** Serves /openapi.json and the reference page at /docs (script served from this service: works offline). */
export function openApiRoutes(app: OpenAPIHono<AppEnv>, deps: Deps): void {
  app.openAPIRegistry.registerComponent('securitySchemes', 'publisherToken', {
    type: 'http',
    scheme: 'bearer',
    description: 'PUBLISHER_TOKEN, as `Authorization: Bearer <PUBLISHER_TOKEN>`.',
  });
  app.doc31('/openapi.json', {
    openapi: '3.1.0',
    info: {
      title: 'oneletter',
      version: '1',
      description:
        'A self-hosted newsletter service. Publisher endpoints (`/api/*`) take `Authorization: Bearer <PUBLISHER_TOKEN>`. ' +
        'Errors are `{"error":{"code","message"}}`.',
    },
    servers: [{ url: deps.config.publicUrl }],
  });

  app.get('/docs', (c) => {
    c.header('Cache-Control', 'no-cache');
    return c.html(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>oneletter API reference</title>
<link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
<noscript>The reference needs JavaScript. The document itself is at <a href="/openapi.json">/openapi.json</a>.</noscript>
<div id="app"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>`);
  });

  app.get('/docs/init.js', (c) => {
    c.header('Cache-Control', 'no-cache');
    // No validator badge (it would ask swagger.io): the page loads nothing but what this service serves.
    return c.body(
      `SwaggerUIBundle({ url: '/openapi.json', dom_id: '#app', validatorUrl: null, deepLinking: true, tryItOutEnabled: false });\n`,
      200,
      { 'Content-Type': 'text/javascript; charset=utf-8' },
    );
  });

  const assets = { 'swagger-ui-bundle.js': 'text/javascript', 'swagger-ui.css': 'text/css' } as const;
  for (const [name, type] of Object.entries(assets) as [keyof typeof assets, string][]) {
    app.get(`/docs/${name}`, async (c) => {
      const file = await deps.docsAssets?.(name);
      if (!file)
        throw new AppError('not_found', 'The API reference page is not installed; /openapi.json is.');
      c.header('Cache-Control', 'public, max-age=86400');
      return c.body(file as Uint8Array<ArrayBuffer>, 200, { 'Content-Type': `${type}; charset=utf-8` });
    });
  }
}
