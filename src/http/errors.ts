import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { Config } from '../config.js';
import type { AppEnv, Deps, ErrorView } from '../deps.js';
import { describeError } from '../log.js';

/** Every error code a client can see, with its HTTP status. */
export const errorStatus = {
  bad_request: 400,
  malformed_json: 400,
  invalid_cursor: 400,
  unauthorized: 401,
  signature_invalid: 401,
  topic_not_allowed: 401,
  forbidden_origin: 403,
  invalid_csrf_token: 403,
  not_found: 404,
  token_invalid: 404,
  method_not_allowed: 405,
  token_expired: 410,
  payload_too_large: 413,
  unsupported_media_type: 415,
  invalid_csv: 422,
  invalid_email: 422,
  invalid_input: 422,
  invalid_redirect: 422,
  verification_failed: 422,
  rate_limited: 429,
  internal: 500,
  certificate_unavailable: 502,
  confirmation_failed: 502,
  database_unavailable: 503,
} as const satisfies Record<string, ContentfulStatusCode>;

export type ErrorCode = keyof typeof errorStatus;

/** An error meant for the client: a code from the closed set above and a message saying what to do. */
export class AppError extends Error {
  override name = 'AppError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** A page title for browsers; defaults to a generic one for the status. */
    readonly title?: string,
    /** For 429 and 503: seconds the client should wait (Retry-After). */
    readonly retryAfter?: number,
  ) {
    super(message);
  }
  get status(): ContentfulStatusCode {
    return errorStatus[this.code];
  }
}

const titles: Partial<Record<number, string>> = {
  400: 'That request could not be read',
  401: 'Not authorised',
  403: 'Not allowed',
  404: 'Page not found',
  405: 'Not allowed',
  410: 'This link has expired',
  413: 'That request is too large',
  415: 'That request could not be read',
  422: 'Please check what you entered',
  429: 'Too many attempts',
  500: 'Something went wrong',
  502: 'Temporarily unavailable',
  503: 'Temporarily unavailable',
};

/** Whether the client wants JSON rather than an HTML page. */
export function wantsJson(c: Context): boolean {
  if (c.req.path.startsWith('/api/') || c.req.path.startsWith('/webhooks/')) return true;
  const accept = c.req.header('accept') ?? '';
  if (/application\/json/i.test(accept) && !/text\/html/i.test(accept)) return true;
  return /^application\/(.+\+)?json/i.test(c.req.header('content-type') ?? '');
}

/** SQLSTATE classes and driver codes that mean the database can't be reached right now. */
const unavailableCodes = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'CONNECT_TIMEOUT',
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  '57P01',
  '57P02',
  '57P03',
  // A statement timeout (statement_timeout, lock_timeout): the database too busy to answer in time.
  '57014',
  '55P03',
  '55000',
]);

/** True when an error says the database is down or unreachable, not that a query was wrong. */
export function isDatabaseUnavailable(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e && depth < 4; depth++) {
    const code = (e as { code?: unknown }).code;
    // Class 08: connection exceptions; class 53: insufficient resources (too many connections, disk full).
    if (typeof code === 'string' && (unavailableCodes.has(code) || /^(08|53)/.test(code))) return true;
    // The embedded database says so in words when it has been closed (the process is shutting down).
    if (e instanceof Error && /PGlite is closed/i.test(e.message)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/** Turns any thrown error into the client's answer: JSON or a page, never a stack trace. */
export function toAppError(error: unknown): AppError {
  if (error instanceof AppError) return error;
  // Hono's own refusals (a route's validator: a body of a type the route does not take, unreadable JSON).
  if (error instanceof HTTPException && error.status === 415) {
    return new AppError(
      'unsupported_media_type',
      'Send the body in one of the content types this address takes.',
    );
  }
  if (error instanceof HTTPException && error.status === 400) {
    return new AppError('bad_request', 'The body could not be read. Send it as the content type it says.');
  }
  if (isDatabaseUnavailable(error)) {
    return new AppError(
      'database_unavailable',
      'The service cannot reach its database right now. Please try again in a minute.',
    );
  }
  return new AppError('internal', 'Something went wrong on our side. Please try again later.');
}

/** Sends an error to the client in the form it accepts: JSON `{"error":{"code":…,"message":…}}` or a page. */
export async function respondError(c: Context<AppEnv>, error: AppError): Promise<Response> {
  if (error.code === 'rate_limited' || error.code === 'database_unavailable') {
    c.header('Retry-After', String(error.retryAfter ?? 60));
  }
  if (wantsJson(c)) {
    return c.json({ error: { code: error.code, message: error.message } }, error.status);
  }
  const view = {
    status: error.status,
    title: error.title ?? titles[error.status] ?? 'Something went wrong',
    message: error.message,
  };
  const ownPage = c.get('errorPage');
  const html = await (ownPage ? ownPage(view) : readerErrorPage(c, error, view)).catch(
    () => `<!doctype html><title>Error</title><p>${error.status}: ${escapeHtml(error.message)}</p>`,
  );
  return c.html(html, error.status);
}

/** The readers' error page: a dead link, or an address the form refused, offers the form again. */
function readerErrorPage(c: Context<AppEnv>, error: AppError, view: ErrorView): Promise<string> {
  const deps = c.get('deps');
  return deps.renderer.page('error', {
    ...pageVars(deps, c.req.path),
    ...view,
    offer_subscribe:
      error.code === 'token_invalid' || error.code === 'token_expired' || error.code === 'invalid_email',
    retry: error.code === 'invalid_email',
  });
}

/**
 * The variables every page template gets. With the path being answered, `site_here` says the page is the
 * site's address itself (SITE_URL unset, or pointing at this service): its "Back to …" links would loop.
 */
export function pageVars(deps: Deps, path?: string): Record<string, unknown> {
  return {
    site_here: path !== undefined && isSiteUrl(deps.config, path),
    site_name: deps.config.siteName,
    site_url: deps.config.siteUrl,
    public_url: deps.config.publicUrl,
    confirm_hours: Math.round(deps.config.confirmTokenTtlMs / 3_600_000),
    altcha: Boolean(deps.config.altchaHmacKey),
  };
}

/** Whether `path` of this service (behind PUBLIC_URL) is SITE_URL's page; a trailing slash, query or fragment aside. */
function isSiteUrl(config: Pick<Config, 'publicUrl' | 'siteUrl'>, path: string): boolean {
  const page = (url: URL) => `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
  const here = new URL(config.publicUrl);
  here.pathname = `${here.pathname.replace(/\/+$/, '')}${path}`;
  return page(here) === page(new URL(config.siteUrl));
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

/** The app's one error handler: logs what the operator needs (no stack to the client). */
export function onError(error: Error, c: Context<AppEnv>): Promise<Response> {
  const appError = toAppError(error);
  if (appError.status >= 500) {
    c.get('deps')?.log.error({
      msg: 'request failed',
      path: redactPath(c.req.path),
      ...describeError(error),
    });
  }
  return respondError(c, appError);
}

/** A path with any token in it replaced, for logs. */
export function redactPath(path: string): string {
  return path.replace(/^\/(confirm|unsubscribe)\/[^/]+/, '/$1/:token');
}
