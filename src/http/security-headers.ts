import type { MiddlewareHandler } from 'hono';
import { secureHeaders } from 'hono/secure-headers';
import type { AppEnv } from '../deps.js';

/**
 * The headers every answer carries: Hono's secureHeaders() with a CSP that allows exactly what the pages
 * use (our stylesheet, our icon, and forms that post to us; no scripts; no images but the icon: browsers
 * check a `<link rel="icon">` against img-src), and frames denied outright. No Cross-Origin-Resource-Policy:
 * /form.js is loaded by the site's pages on other origins and sets its own. The dashboard and /docs replace
 * the CSP with their own, set after these.
 */
export function securityHeaders(ownOrigin: string): MiddlewareHandler<AppEnv> {
  return secureHeaders({
    contentSecurityPolicy: {
      defaultSrc: ["'none'"],
      styleSrc: ["'self'", ownOrigin],
      imgSrc: ["'self'", ownOrigin],
      formAction: ["'self'", ownOrigin],
      frameAncestors: ["'none'"],
      baseUri: ["'none'"],
    },
    crossOriginResourcePolicy: false,
    xFrameOptions: 'DENY',
  });
}
