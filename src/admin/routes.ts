import type { Context, MiddlewareHandler } from 'hono';
import { Hono } from 'hono';
import type { Config } from '../config.js';
import type { AppEnv, Deps } from '../deps.js';
import { readFields } from '../http/body.js';
import { AppError, pageVars, wantsJson } from '../http/errors.js';
import { checkSameOrigin, overHttps } from '../http/same-origin.js';
import { checkPublisherToken } from '../http/token-guesses.js';
import { outboxPages } from './outbox.js';
import { overviewRoutes } from './overview.js';
import type { AdminEnv } from './page.js';
import { adminErrorPage, PREVIEW_FRAME_PATH } from './page.js';
import { publishRoutes } from './publish.js';
import { sendoutRoutes } from './sendout.js';
import {
  checkToken,
  clearSignInNonce,
  currentSession,
  endSession,
  readSignInNonce,
  signInNonce,
  startSession,
} from './session.js';
import { ADMIN_IMPORT_PATH, importBodyLimit, subscriberPages } from './subscribers.js';

/** The dashboard's pages: our stylesheet, script and icon, forms and polling to us, the preview frame from us. */
export function adminCsp(config: Config): string {
  const self = `'self' ${new URL(config.publicUrl).origin}`;
  return [
    "default-src 'none'",
    `style-src ${self}`,
    `script-src ${self}`,
    `img-src ${self}`,
    `connect-src ${self}`,
    `frame-src ${self}`,
    `form-action ${self}`,
    "frame-ancestors 'none'",
    "base-uri 'none'",
  ].join('; ');
}

/** The email preview frame: the letter's own inline styles and remote images, nothing that runs. */
export const PREVIEW_FRAME_CSP =
  "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; sandbox; frame-ancestors 'self'; base-uri 'none'";

/**
 * Headers of every /admin response: the dashboard's CSP (set after the app-wide one, which it replaces),
 * and no caching anywhere. Mounted before secureHeaders so its value is the one that stays.
 */
export function adminHeaders(config: Config): MiddlewareHandler<AppEnv> {
  const csp = adminCsp(config);
  return async (c, next) => {
    c.set('errorPage', (error) => adminErrorPage(c, error));
    await next();
    c.header('Cache-Control', 'no-store');
    // With no-referrer, browsers send `Origin: null` on form posts; same-origin lets them name the dashboard.
    c.header('Referrer-Policy', 'same-origin');
    if (c.req.path === PREVIEW_FRAME_PATH) {
      c.header('Content-Security-Policy', PREVIEW_FRAME_CSP);
      c.header('X-Frame-Options', 'SAMEORIGIN');
      // Sandboxed, the letter has an opaque origin, which has an agent cluster of its own anyway: asking for
      // one keyed to this origin (Origin-Agent-Cluster, as every other answer does) is a request Chromium
      // can't grant, and says so in the console.
      c.res.headers.delete('Origin-Agent-Cluster');
    } else {
      c.header('Content-Security-Policy', csp);
    }
  };
}

const SIGN_IN_PATH = '/admin/sign-in';
const ASSET_PATH = '/admin/assets/admin.js';

/** The publisher's dashboard at /admin: sign-in, overview, send-outs, publishing, subscribers. */
export function adminRoutes(deps: Deps): Hono<AdminEnv> {
  const app = new Hono<AdminEnv>();
  const { config } = deps;
  const secret = config.adminSessionSecret;

  app.get(ASSET_PATH, (c) =>
    c.body(deps.renderer.asset('pages/admin/admin.js') ?? '', 200, {
      'Content-Type': 'text/javascript; charset=utf-8',
    }),
  );

  app.get(SIGN_IN_PATH, async (c) => {
    if (await currentSession(c, secret)) return c.redirect('/admin', 303);
    return signInPage(c);
  });

  app.post(SIGN_IN_PATH, async (c) => {
    checkSameOrigin(c);
    const fields = await readFields(c);
    const nonce = await readSignInNonce(c, secret);
    if (!nonce || !(await checkToken(nonce, fields.csrf))) {
      throw new AppError(
        'invalid_csrf_token',
        'This sign-in form has expired or did not come from this dashboard. Open /admin/sign-in and try again.',
        'Sign-in form expired',
      );
    }
    if ((await checkPublisherToken(deps, c, fields.token)) === 'wrong') {
      // The page above the message says where the token is.
      return signInPage(c, 'That is not the publisher token.', 401);
    }
    clearSignInNonce(c);
    await startSession(c, secret, config.adminSessionMs);
    deps.log.info({ msg: 'admin signed in' });
    return c.redirect('/admin', 303);
  });

  app.use(ADMIN_IMPORT_PATH, importBodyLimit(deps));
  // Everything else needs a session: pages send the browser to the sign-in form, the rest get a 401.
  app.use('/admin/*', requireSession);
  app.use('/admin', requireSession);

  app.post('/admin/sign-out', (c) => {
    endSession(c);
    return c.redirect(SIGN_IN_PATH, 303);
  });

  overviewRoutes(app, deps);
  sendoutRoutes(app, deps);
  publishRoutes(app, deps);
  subscriberPages(app, deps);
  outboxPages(app, deps);
  return app;

  async function signInPage(c: Context<AdminEnv>, error?: string, status: 200 | 401 = 200) {
    const html = await deps.renderer.page('admin/sign-in', {
      ...pageVars(deps),
      csrf: await signInNonce(c, secret),
      error,
      token_generated: config.publisherTokenGenerated,
      in_clear: !overHttps(c) && !isLoopback(new URL(c.req.url).hostname),
    });
    return c.html(html, status);
  }

  async function requireSession(c: Context<AdminEnv>, next: () => Promise<void>) {
    if (c.req.path === SIGN_IN_PATH || c.req.path === ASSET_PATH) return next();
    const session = await currentSession(c, secret);
    if (!session) {
      if (c.req.method === 'GET' && !wantsJson(c)) return c.redirect(SIGN_IN_PATH, 303);
      throw new AppError('unauthorized', 'Sign in to the dashboard at /admin/sign-in first.');
    }
    c.set('session', session);
    c.set('csrf', session.csrf);
    if (c.req.method !== 'GET' && c.req.method !== 'HEAD') {
      checkSameOrigin(c);
      const given = c.req.header('x-csrf-token') ?? (await csrfField(c));
      if (!(await checkToken(session.csrf, given))) {
        throw new AppError(
          'invalid_csrf_token',
          'This form did not come from your dashboard session (or the session changed). Reload the page and try again.',
          'Form expired',
        );
      }
    }
    await next();
  }
}

/**
 * The form's `csrf` field. A form with a file (the import) is read as multipart, which hono keeps for the
 * route to read again; every other form as flat fields.
 */
async function csrfField(c: Context<AdminEnv>): Promise<string | undefined> {
  if (
    c.req.path === ADMIN_IMPORT_PATH &&
    /^multipart\/form-data\b/i.test(c.req.header('content-type') ?? '')
  ) {
    let form: FormData;
    try {
      form = await c.req.formData();
    } catch {
      throw new AppError('bad_request', 'The form could not be read. Choose the file again and send it.');
    }
    const value = form.get('csrf');
    return typeof value === 'string' ? value : undefined;
  }
  return (await readFields(c)).csrf;
}

/** An address only this machine reaches: what crosses it in clear stays here. */
function isLoopback(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || hostname.startsWith('127.');
}
