import type { Context, MiddlewareHandler } from 'hono';
import type { AppEnv } from '../deps.js';
import { AppError } from './errors.js';

const MAX_FIELDS = 20;

/** Reads a form (urlencoded or multipart) or JSON body into flat string fields, with clear errors. */
export async function readFields(c: Context<AppEnv>): Promise<Record<string, string>> {
  const type = (c.req.header('content-type') ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  if (type === 'application/json' || /^application\/.+\+json$/.test(type)) return readJson(c);
  if (type === 'application/x-www-form-urlencoded' || type === 'multipart/form-data')
    return readForm(c, type);
  throw new AppError(
    'unsupported_media_type',
    'Send the fields as a form (application/x-www-form-urlencoded or multipart/form-data) or as JSON (application/json).',
  );
}

async function readJson(c: Context<AppEnv>): Promise<Record<string, string>> {
  let body: unknown;
  try {
    body = JSON.parse(await c.req.text());
  } catch {
    throw new AppError(
      'malformed_json',
      'The body is not valid JSON. Send an object like {"email":"you@example.com"}.',
    );
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new AppError('malformed_json', 'The body must be a JSON object like {"email":"you@example.com"}.');
  }
  const entries = Object.entries(body);
  if (entries.length > MAX_FIELDS) throw new AppError('bad_request', `Send at most ${MAX_FIELDS} fields.`);
  const fields: Record<string, string> = {};
  for (const [key, value] of entries) {
    if (value === null || value === undefined) continue;
    if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
      throw new AppError('invalid_input', `The field "${key.slice(0, 40)}" must be a string.`);
    }
    fields[key] = String(value);
  }
  return fields;
}

async function readForm(c: Context<AppEnv>, type: string): Promise<Record<string, string>> {
  let form: FormData | URLSearchParams;
  try {
    // A urlencoded body is parsed as text, as the fetch API's formData() would parse it (WHATWG
    // urlencoded, UTF-8): on Node, formData() first builds a whole fetch Request around the body.
    form =
      type === 'application/x-www-form-urlencoded'
        ? new URLSearchParams(await c.req.text())
        : await c.req.formData();
  } catch {
    throw new AppError(
      'bad_request',
      'The form body could not be read. Send it as application/x-www-form-urlencoded.',
    );
  }
  const fields: Record<string, string> = {};
  let count = 0;
  for (const [key, value] of form.entries()) {
    if (++count > MAX_FIELDS) throw new AppError('bad_request', `Send at most ${MAX_FIELDS} fields.`);
    if (typeof value !== 'string') {
      throw new AppError('invalid_input', `The field "${key.slice(0, 40)}" must be text, not a file.`);
    }
    if (!(key in fields)) fields[key] = value;
  }
  return fields;
}

/**
 * A route's JSON body, read before its validator: not JSON → 415, unreadable → 400 `malformed_json`, each
 * with a message that shows what to send (`what`, `example`). Hono keeps the parsed body for the validator.
 */
export function jsonBody(what: string, example: string): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    if (!/^application\/(.+\+)?json/i.test(c.req.header('content-type') ?? '')) {
      throw new AppError(
        'unsupported_media_type',
        `Send ${what} as JSON with Content-Type: application/json.`,
      );
    }
    try {
      await c.req.json();
    } catch {
      throw new AppError('malformed_json', `The body is not valid JSON. Send ${example}.`);
    }
    await next();
  };
}
