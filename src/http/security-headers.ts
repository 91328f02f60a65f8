import type { MiddlewareHandler } from 'hono';
import { secureHeaders } from 'hono/secure-headers';
import type { AppEnv } from '../deps.js';

/**
 * The headers every answer carries: Hono's secureHeaders() with a CSP that allows exactly what the pages
 * use (our stylesheet, our icon, and forms that post to us; no scripts unless ALTCHA's; no images but the icon: browsers
 * check a `<link rel="icon">` against img-src), and frames denied outright. No Cross-Origin-Resource-Policy:
 * /form.js is loaded by the site's pages on other origins and sets its own. The dashboard and /docs replace
 * the CSP with their own, set after these.
 */
export function securityHeaders(ownOrigin: string, altcha = false): MiddlewareHandler<AppEnv> {
  // With ALTCHA on, the subscription forms run the widget, all of it from here: its script (and /form.js,
  // which loads it), its proof-of-work worker, and its fetch of a challenge.
  const widget = altcha
    ? {
        scriptSrc: ["'self'", ownOrigin],
        workerSrc: ["'self'", ownOrigin],
        connectSrc: ["'self'", ownOrigin],
      }
    : {};
  const secure = secureHeaders({
    contentSecurityPolicy: {
      defaultSrc: ["'none'"],
      ...widget,
      styleSrc: ["'self'", ownOrigin],
      imgSrc: ["'self'", ownOrigin],
      formAction: ["'self'", ownOrigin],
      frameAncestors: ["'none'"],
      baseUri: ["'none'"],
    },
    crossOriginResourcePolicy: false,
    xFrameOptions: 'DENY',
    referrerPolicy: false,
  });
  return async (c, next) => {
    await secure(c, next);
    // no-referrer unless the page chose another: /form and the confirmation page let their own form's
    // post name them (with no-referrer, browsers send neither Referer nor a real Origin).
    if (!c.res.headers.has('Referrer-Policy')) c.header('Referrer-Policy', 'no-referrer');
  };
}
