import { createHash } from 'node:crypto';
import { type SQL, sql } from 'drizzle-orm';
import type { Context } from 'hono';
import type { Config } from '../config.js';
import type { AppEnv } from '../deps.js';
import { clientIp } from '../http/client-ip.js';
import type { Renderer } from '../mail/render.js';
import type { Consent } from './service.js';

/** The templates whose wording a reader agrees to when subscribing: the forms on our pages and the site's. */
const CONSENT_TEMPLATES = ['pages/subscribe-form.liquid', 'pages/snippet.liquid'];

/**
 * The version of the consent text: CONSENT_TEXT_VERSION when set (the site's own form says something
 * else), else a hash of the forms' wording, so that a change to them shows in every record after it.
 */
export function consentTextVersion(config: Pick<Config, 'consentTextVersion'>, renderer: Renderer): string {
  if (config.consentTextVersion) return config.consentTextVersion;
  const wording = CONSENT_TEMPLATES.map((name) => renderer.asset(name) ?? '').join('\n');
  return `sha256:${createHash('sha256').update(wording).digest('hex').slice(0, 16)}`;
}

/**
 * The consent evidence of a request: the page it came from (Referer's origin and path, never its query,
 * which may hold someone's token; else the Origin), the user agent, and the IP when RECORD_SIGNUP_IP=true.
 * `originOnly`: for the confirmation, whose page is our own link with its token in the path.
 */
export function consentOf(c: Context<AppEnv>, textVersion: string, originOnly = false): Consent {
  const { config } = c.get('deps');
  return {
    page: pageOf(c.req.header('referer'), c.req.header('origin'), originOnly),
    userAgent: c.req.header('user-agent')?.slice(0, 512) || null,
    ip: config.recordSignupIp ? clientIp(c) : null,
    textVersion,
  };
}

function pageOf(referer: string | undefined, origin: string | undefined, originOnly: boolean): string | null {
  for (const candidate of [referer, origin]) {
    const url = parseHttpUrl(candidate);
    if (url) return (originOnly ? url.origin : `${url.origin}${url.pathname}`).slice(0, 2048);
  }
  return null;
}

function parseHttpUrl(value: string | undefined): URL | undefined {
  if (!value) return undefined;
  try {
    const url = new URL(value);
    return /^https?:$/.test(url.protocol) ? url : undefined;
  } catch {
    return undefined;
  }
}

/** A confirmation row's consent as the list reads it (the API's detail, the export). */
export interface ConsentRow {
  requestedAt: Date | string | null;
  page: string | null;
  userAgent: string | null;
  ip: string | null;
  textVersion: string | null;
  confirmPage: string | null;
  confirmUserAgent: string | null;
  confirmIp: string | null;
  confirmTextVersion: string | null;
}

/** The select list of a ConsentRow from the confirmations row named `alias` (a name of ours, not input). */
export function consentColumns(alias: 'c' | 'k'): SQL {
  return sql.raw(
    `${alias}.requested_at as "requestedAt", ${alias}.page, ${alias}.user_agent as "userAgent", ${alias}.ip,
     ${alias}.text_version as "textVersion", ${alias}.confirm_page as "confirmPage",
     ${alias}.confirm_user_agent as "confirmUserAgent", ${alias}.confirm_ip as "confirmIp",
     ${alias}.confirm_text_version as "confirmTextVersion"`,
  );
}
