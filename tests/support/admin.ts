import type { TestService } from './service.js';
import { PUBLISHER_TOKEN } from './service.js';

/** A browser's cookie jar in one string: `name=value; name=value`, from Set-Cookie headers. */
export class Cookies {
  readonly values = new Map<string, string>();
  take(response: Response): this {
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const eq = pair?.indexOf('=') ?? -1;
      if (!pair || eq < 0) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      if (/max-age=0/i.test(line) || value === '') this.values.delete(name);
      else this.values.set(name, value);
    }
    return this;
  }
  header(): string {
    return [...this.values].map(([k, v]) => `${k}=${v}`).join('; ');
  }
}

/** The CSRF token in a page's form. */
export function csrfIn(html: string): string {
  const match = /name="csrf" value="([^"]+)"/.exec(html);
  if (!match?.[1]) throw new Error(`no CSRF field in: ${html.slice(0, 300)}`);
  return match[1];
}

export function form(fields: Record<string, string>): { body: string; 'content-type': string } {
  return {
    body: new URLSearchParams(fields).toString(),
    'content-type': 'application/x-www-form-urlencoded',
  };
}

/** The origin of `app.request('/path')`: what a browser there names in the Origin of its form posts. */
export const APP_ORIGIN = 'http://localhost';

/** A signed-in dashboard client: its cookies, the CSRF token of its session, and request helpers. */
export interface AdminClient {
  cookies: Cookies;
  csrf: string;
  get(path: string, headers?: Record<string, string>): Promise<Response>;
  post(path: string, fields: Record<string, string>): Promise<Response>;
}

/** Opens the sign-in form and signs in as a browser would (cookie + CSRF token). */
export async function signIn(s: Pick<TestService, 'app'>, token = PUBLISHER_TOKEN): Promise<AdminClient> {
  const cookies = new Cookies();
  const page = await s.app.request('/admin/sign-in');
  cookies.take(page);
  const signInCsrf = csrfIn(await page.text());
  const res = await s.app.request('/admin/sign-in', {
    method: 'POST',
    headers: {
      cookie: cookies.header(),
      'content-type': 'application/x-www-form-urlencoded',
      origin: APP_ORIGIN,
    },
    body: new URLSearchParams({ csrf: signInCsrf, token }).toString(),
  });
  if (res.status !== 303) throw new Error(`sign-in answered ${res.status}: ${await res.text()}`);
  cookies.take(res);
  const client: AdminClient = {
    cookies,
    csrf: '',
    get: async (path, headers = {}) =>
      s.app.request(path, { headers: { cookie: cookies.header(), ...headers } }),
    post: async (path, fields) =>
      s.app.request(path, {
        method: 'POST',
        headers: {
          cookie: cookies.header(),
          'content-type': 'application/x-www-form-urlencoded',
          origin: APP_ORIGIN,
        },
        body: new URLSearchParams({ csrf: client.csrf, ...fields }).toString(),
      }),
  };
  client.csrf = csrfIn(await (await client.get('/admin')).text());
  return client;
}
