import type { Context } from 'hono';
import type { AppEnv, ErrorView } from '../deps.js';
import { pageVars } from '../http/errors.js';
import type { AdminSession } from './session.js';

/** What every dashboard page shares: its handlers' env, and how a page is rendered. */

/** The dashboard's handlers see the session and its CSRF token besides the deps. */
export type AdminEnv = { Variables: AppEnv['Variables'] & { session?: AdminSession; csrf?: string } };

export const PREVIEW_FRAME_PATH = '/admin/publish/preview-frame';

/** Renders a dashboard page with what every one of them needs. */
export async function adminPage(
  c: Context<AdminEnv>,
  name: string,
  vars: Record<string, unknown>,
  status: 200 | 404 | 422 | 429 = 200,
): Promise<Response> {
  const deps = c.get('deps');
  const html = await deps.renderer.page(`admin/${name}`, {
    ...pageVars(deps),
    csrf: c.get('csrf'),
    section: name,
    has_outbox: Boolean(deps.outbox),
    ...vars,
  });
  return c.html(html, status);
}

/**
 * The dashboard's page for an error under /admin (a page not found, a form expired): its layout, with the
 * navigation once signed in, and a way back to the overview unless the error is the overview's own.
 */
export function adminErrorPage(c: Context<AdminEnv>, error: ErrorView): Promise<string> {
  const deps = c.get('deps');
  return deps.renderer.page('admin/error', {
    ...pageVars(deps),
    ...error,
    csrf: c.get('csrf'),
    section: 'error',
    has_outbox: Boolean(deps.outbox),
    back: c.req.path !== '/admin',
  });
}
