import type { MiddlewareHandler } from 'hono';
import type { AppEnv } from '../deps.js';

/**
 * The headers every answer carries (what Hono's secureHeaders() set, listed here so the list is ours to
 * read). The CSP allows exactly what the pages use: our stylesheet, our icon, and forms that post to us. No
 * scripts; no images but the icon (browsers check a `<link rel="icon">` against img-src). The dashboard and
 * /docs replace the CSP with their own, set after these.
 */
export function securityHeaders(ownOrigin: string): Readonly<Record<string, string>> {
  return Object.freeze({
    'content-security-policy': [
      "default-src 'none'",
      `style-src 'self' ${ownOrigin}`,
      `img-src 'self' ${ownOrigin}`,
      `form-action 'self' ${ownOrigin}`,
      "frame-ancestors 'none'",
      "base-uri 'none'",
    ].join('; '),
    'cross-origin-opener-policy': 'same-origin',
    'origin-agent-cluster': '?1',
    'referrer-policy': 'no-referrer',
    'strict-transport-security': 'max-age=15552000; includeSubDomains',
    'x-content-type-options': 'nosniff',
    'x-dns-prefetch-control': 'off',
    'x-download-options': 'noopen',
    'x-frame-options': 'DENY',
    'x-permitted-cross-domain-policies': 'none',
    'x-xss-protection': '0',
  });
}

/** Answers made whole by their route, security headers included: the middleware leaves them alone. */
const whole = new WeakSet<Response>();

/** True for an answer made by wholeAnswer(): its headers are complete. */
export function isWhole(answer: Response): boolean {
  return whole.has(answer);
}

/** Sets the security headers on every answer that does not carry them already (see wholeAnswer()). */
export function secureAnswers(headers: Readonly<Record<string, string>>): MiddlewareHandler<AppEnv> {
  const entries = Object.entries(headers);
  return async (c, next) => {
    await next();
    if (isWhole(c.res)) return;
    for (const [name, value] of entries) c.res.headers.set(name, value);
  };
}

/**
 * An answer with every header given as one plain object, the security headers among them (securityHeaders()).
 * On Node it is written straight from that object: Hono would gather the headers in a fetch Headers
 * object, whose checks and sorting cost a sixth of the CPU time of refusing an invalid address.
 */
export function wholeAnswer(
  body: string,
  status: number,
  headers: Readonly<Record<string, string>>,
): Response {
  const answer = new Response(body, { status, headers });
  whole.add(answer);
  return answer;
}
