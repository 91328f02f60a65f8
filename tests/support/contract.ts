import { createRequire } from 'node:module';
import { join } from 'node:path';
import { ensureTool } from '../../scripts/tool.mjs';
import type { TestService } from './service.js';
import { PUBLIC_URL } from './service.js';

/**
 * Calls the app and checks the call against the app's own /openapi.json with Stoplight Prism's validator,
 * as a validating proxy (`prism proxy --errors`) would: the answer's status must be documented for the
 * operation, its content type among the documented ones, its body and headers valid against their schemas;
 * and a request the test calls valid must be valid by the document too (body, parameters, patterns,
 * security), so a validating client would send it. Mismatches come back as sentences, to assert empty.
 */
export interface ContractCheck {
  call(path: string, init?: RequestInit, options?: { validRequest?: boolean }): Promise<CheckedCall>;
}

export interface CheckedCall {
  res: Response;
  /** What a validating client would refuse, or what the document says otherwise; empty when none. */
  mismatches: string[];
}

/** A document as /openapi.json serves it (changed by a test, to see that a wrong one is caught). */
export type OpenApiDocument = Record<string, unknown>;

export async function contractCheck(
  s: TestService,
  change: (doc: OpenApiDocument) => void = () => {},
): Promise<ContractCheck> {
  const doc = (await (await s.app.request('/openapi.json')).json()) as OpenApiDocument;
  change(doc);
  const { createInstance, getHttpOperationsFromSpec } = prismHttp();
  const operations = await getHttpOperationsFromSpec(doc);
  // The app has answered before Prism is asked: its "upstream" hands Prism that answer.
  const answers = new WeakMap<IHttpRequest, IHttpResponse>();
  const prism = createInstance(
    {
      isProxy: true,
      upstream: new URL(PUBLIC_URL),
      upstreamProxy: undefined,
      checkSecurity: true,
      validateRequest: true,
      validateResponse: true,
      // Record request mismatches instead of refusing: the tests send bad requests on purpose.
      errors: false,
      mock: { dynamic: false },
    },
    {
      logger: silentLogger as never,
      forward:
        ({ data }: { data: IHttpRequest }) =>
        () =>
        async () => {
          const answer = answers.get(data);
          return answer
            ? { _tag: 'Right' as const, right: answer }
            : { _tag: 'Left' as const, left: new Error('no answer recorded for this request') };
        },
    },
  );

  return {
    async call(path, init = {}, { validRequest = false } = {}) {
      const requestBody = typeof init.body === 'string' ? init.body : undefined;
      const res = await s.app.request(path, init);
      const url = new URL(path, PUBLIC_URL);
      const headers = Object.fromEntries(new Headers(init.headers));
      const request: IHttpRequest = {
        method: (init.method ?? 'GET').toLowerCase() as IHttpRequest['method'],
        url: { baseUrl: PUBLIC_URL, path: url.pathname, query: queryOf(url) },
        headers,
        body: parsed(requestBody, headers['content-type']),
      };
      const text = await res.clone().text();
      const answerHeaders = Object.fromEntries(res.headers);
      answers.set(request, {
        statusCode: res.status,
        headers: answerHeaders,
        body: parsed(text, answerHeaders['content-type']),
      });
      const outcome = await prism.request(request, operations)();
      if (outcome._tag === 'Left') return { res, mismatches: [`prism: ${outcome.left.message}`] };
      const { input, output } = outcome.right.validations;
      const said = (d: { message: string; path?: unknown[] }) =>
        `${d.path?.length ? `${d.path.join('.')}: ` : ''}${d.message}`;
      const mismatches = [
        // A request to a route the document does not have is always a mismatch.
        ...input
          .filter((d) => validRequest || /route not found/i.test(d.message))
          .map((d) => `request ${said(d)}`),
        ...output.map((d) => `answer ${res.status} ${said(d)}`),
      ];
      return { res, mismatches };
    },
  };
}

/** A body as a proxy hands it to Prism: JSON parsed, anything else as text. */
function parsed(text: string | undefined, contentType: string | undefined): unknown {
  if (text === undefined || text === '') return undefined;
  if (!/^application\/(.+\+)?json/i.test(contentType ?? '')) return text;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function queryOf(url: URL): Record<string, string | string[]> {
  const query: Record<string, string | string[]> = {};
  for (const key of new Set(url.searchParams.keys())) {
    const values = url.searchParams.getAll(key);
    query[key] = values.length === 1 ? (values[0] as string) : values;
  }
  return query;
}

const silentLogger: Record<string, unknown> = new Proxy(
  {},
  { get: (_target, key) => (key === 'child' ? () => silentLogger : () => {}) },
);

/**
 * Prism, from tools/contract (installed there on first use, scripts/tool.mjs: with its dependencies it would
 * be a third of node_modules), typed as far as this file uses it.
 */
function prismHttp(): PrismHttp {
  return createRequire(join(ensureTool('contract'), 'package.json'))('@stoplight/prism-http') as PrismHttp;
}

interface IHttpRequest {
  method: 'get' | 'put' | 'post' | 'delete' | 'options' | 'head' | 'patch' | 'trace';
  url: { baseUrl: string; path: string; query: Record<string, string | string[]> };
  headers: Record<string, string>;
  body: unknown;
}

interface IHttpResponse {
  statusCode: number;
  headers: Record<string, string>;
  body: unknown;
}

type Either<L, R> = { _tag: 'Left'; left: L } | { _tag: 'Right'; right: R };
interface Diagnostic {
  message: string;
  path?: unknown[];
}

interface PrismHttp {
  getHttpOperationsFromSpec(doc: OpenApiDocument): Promise<unknown[]>;
  createInstance(
    config: Record<string, unknown>,
    components: {
      logger: unknown;
      forward: (input: { data: IHttpRequest }) => () => () => Promise<Either<Error, IHttpResponse>>;
    },
  ): {
    request(
      request: IHttpRequest,
      operations: unknown[],
    ): () => Promise<Either<Error, { validations: { input: Diagnostic[]; output: Diagnostic[] } }>>;
  };
}
