import type { Context } from 'hono';
import type { AppEnv } from '../deps.js';
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
