/** A feed that could not be read; the message says why, in words an operator can act on. */
export class FeedError extends Error {
  override name = 'FeedError';
}

/** The validators a server gave with the last copy, sent back to ask "has it changed?". */
export interface Validators {
  etag?: string | null;
  lastModified?: string | null;
}

export type Fetched =
  | { status: 'not_modified' }
  | { status: 'ok'; body: string; etag: string | null; lastModified: string | null };

export interface FetchOptions {
  timeoutMs: number;
  maxBytes: number;
  /** Aborts the request (the watcher is stopping). */
  signal?: AbortSignal;
}

const ACCEPT =
  'application/rss+xml, application/atom+xml, application/feed+json, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5';

/**
 * GETs the feed with the stored validators (ETag / If-Modified-Since), within a time limit and a size limit:
 * reading stops as soon as the body passes `maxBytes`. Throws FeedError for anything but 200 or 304.
 */
export async function fetchFeed(
  fetchFn: typeof fetch,
  url: string,
  validators: Validators,
  options: FetchOptions,
): Promise<Fetched> {
  const timeout = AbortSignal.timeout(options.timeoutMs);
  const signal = options.signal ? AbortSignal.any([timeout, options.signal]) : timeout;
  const headers: Record<string, string> = { accept: ACCEPT, 'user-agent': 'oneletter feed watcher' };
  if (validators.etag) headers['if-none-match'] = validators.etag;
  if (validators.lastModified) headers['if-modified-since'] = validators.lastModified;
  try {
    const res = await fetchFn(url, { headers, signal, redirect: 'follow' });
    if (res.status === 304) {
      await res.body?.cancel();
      return { status: 'not_modified' };
    }
    if (res.status !== 200) {
      await res.body?.cancel();
      throw new FeedError(`the server answered ${res.status}${res.statusText ? ` ${res.statusText}` : ''}`);
    }
    const bytes = await readLimited(res, options.maxBytes);
    return {
      status: 'ok',
      body: decode(bytes, res.headers.get('content-type')),
      etag: res.headers.get('etag'),
      lastModified: res.headers.get('last-modified'),
    };
  } catch (error) {
    if (error instanceof FeedError) throw error;
    if (options.signal?.aborted) throw new FeedError('stopped before the feed was read');
    if (timeout.aborted) {
      throw new FeedError(`no complete answer within ${seconds(options.timeoutMs)} (FEED_TIMEOUT_SECONDS)`);
    }
    throw new FeedError(`could not fetch it (${networkReason(error)})`);
  }
}

/** The body's bytes, refusing (and no longer reading) a body larger than `max`. */
async function readLimited(res: Response, max: number): Promise<Uint8Array> {
  // The operator's knob is named: a feed that outgrew the limit is fixed by raising it.
  const tooLarge = () => new FeedError(`the body is larger than ${megabytes(max)} (FEED_MAX_BYTES)`);
  const declared = Number(res.headers.get('content-length') ?? Number.NaN);
  if (declared > max) {
    await res.body?.cancel();
    throw tooLarge();
  }
  if (!res.body) return new Uint8Array();
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > max) {
      await reader.cancel();
      throw tooLarge();
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.byteLength;
  }
  return bytes;
}

/**
 * Text in the charset the server or the XML declaration names; UTF-8 when neither does, or when the runtime's
 * TextDecoder does not know it (Workers know few).
 */
function decode(bytes: Uint8Array, contentType: string | null): string {
  // The declaration is ASCII in any encoding that matters here; read it byte by byte (no decoder needed).
  const head = String.fromCharCode(...bytes.subarray(0, 200));
  const label =
    /charset\s*=\s*"?([\w.:-]+)/i.exec(contentType ?? '')?.[1] ??
    /^\s*<\?xml[^>]*encoding\s*=\s*["']([\w.:-]+)["']/i.exec(head)?.[1] ??
    'utf-8';
  try {
    return new TextDecoder(label).decode(bytes);
  } catch {
    return new TextDecoder('utf-8').decode(bytes);
  }
}

function networkReason(error: unknown): string {
  const cause = (error as { cause?: { code?: unknown; message?: unknown } }).cause;
  if (typeof cause?.code === 'string') return cause.code;
  if (typeof cause?.message === 'string') return cause.message;
  return error instanceof Error ? error.message : String(error);
}

const seconds = (ms: number) => (ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`);
const megabytes = (n: number) =>
  n >= 1024 * 1024 ? `${Math.round((n / 1024 / 1024) * 10) / 10} MB` : `${n} bytes`;
