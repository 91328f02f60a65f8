import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One entry of a fixture feed. */
export interface Item {
  id: string;
  title: string;
  link: string;
  date: Date;
  summary?: string;
}

/** What one path of the feed server answers; change it between polls. */
export interface FeedRoute {
  body: string;
  contentType?: string;
  status?: number;
  /** Sent as ETag; a request with a matching If-None-Match gets 304. */
  etag?: string;
  /** Sent as Last-Modified; a request with the same If-Modified-Since gets 304. */
  lastModified?: string;
  /** Never answer: the request stays open until the client gives up (a server that hangs). */
  hang?: boolean;
  /** Stream this many bytes of junk after the body without a Content-Length (a body without end). */
  endlessBytes?: number;
}

/** A real HTTP server on 127.0.0.1:0 serving fixture feeds that tests change between polls. */
export interface FeedServer {
  url(path: string): string;
  routes: Map<string, FeedRoute>;
  /** Every request's path, headers and answer status, in order. */
  requests: { path: string; headers: IncomingHttpHeaders; status: number }[];
  /** Bytes written for the endless body before the client went away. */
  endlessWritten: number;
  close(): Promise<void>;
}

export async function startFeedServer(): Promise<FeedServer> {
  const state: FeedServer = {
    url: (path) => `http://127.0.0.1:${port}${path}`,
    routes: new Map(),
    requests: [],
    endlessWritten: 0,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const answer = (route: FeedRoute, res: ServerResponse, headers: IncomingHttpHeaders): number => {
    const notModified =
      (route.etag !== undefined && headers['if-none-match'] === route.etag) ||
      (route.lastModified !== undefined && headers['if-modified-since'] === route.lastModified);
    if (route.etag) res.setHeader('etag', route.etag);
    if (route.lastModified) res.setHeader('last-modified', route.lastModified);
    if (notModified) {
      res.writeHead(304).end();
      return 304;
    }
    const status = route.status ?? 200;
    res.setHeader('content-type', route.contentType ?? 'application/xml; charset=utf-8');
    if (route.endlessBytes) {
      res.writeHead(status);
      const chunk = Buffer.alloc(64 * 1024, 'x');
      const pump = () => {
        while (state.endlessWritten < (route.endlessBytes ?? 0)) {
          state.endlessWritten += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      res.on('close', () => res.removeAllListeners('drain'));
      res.write(route.body);
      pump();
      return status;
    }
    res.writeHead(status).end(route.body);
    return status;
  };
  const server = createServer((req, res) => {
    const path = req.url ?? '/';
    const route = state.routes.get(path);
    if (!route) {
      state.requests.push({ path, headers: req.headers, status: 404 });
      res.writeHead(404).end('not found');
      return;
    }
    if (route.hang) return;
    state.requests.push({ path, headers: req.headers, status: answer(route, res, req.headers) });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  return state;
}

const xml = (s: string) =>
  s.replace(
    /[<>&"']/g,
    (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c] ?? c,
  );

/** An RSS 2.0 document with these items, in this order. */
export function rss(items: Item[]): string {
  return `<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0">
  <channel>
    <title>Test essays</title>
    <link>https://example.org/</link>
    <description>Essays, as RSS</description>
${items
  .map(
    (i) => `    <item>
      <title>${xml(i.title)}</title>
      <link>${xml(i.link)}</link>
      <guid isPermaLink="false">${xml(i.id)}</guid>
      <pubDate>${i.date.toUTCString()}</pubDate>
      <description>${xml(`<p>${i.summary ?? `About ${i.title}.`}</p>`)}</description>
    </item>`,
  )
  .join('\n')}
  </channel>
</rss>
`;
}

/** An Atom document with these entries, in this order. */
export function atom(items: Item[]): string {
  return `<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>Test essays</title>
  <id>https://example.org/</id>
  <updated>${new Date().toISOString()}</updated>
${items
  .map(
    (i) => `  <entry>
    <title type="html">${xml(i.title)}</title>
    <id>${xml(i.id)}</id>
    <link rel="alternate" type="text/html" href="${xml(i.link)}"/>
    <published>${i.date.toISOString()}</published>
    <updated>${i.date.toISOString()}</updated>
    <summary>${xml(i.summary ?? `About ${i.title}.`)}</summary>
  </entry>`,
  )
  .join('\n')}
</feed>
`;
}
