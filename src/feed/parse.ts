import { decodeHTML } from 'entities';
import { XMLValidator } from 'fast-xml-parser';
import type { AnyFeed } from 'feedsmith';
import { parseFeed } from 'feedsmith';
import { FeedError } from './fetch.js';

/** One entry of a feed, as the watcher needs it. Only `id` is sure to be there. */
export interface FeedEntry {
  /** The stable id: guid (RSS), id (Atom, JSON Feed), else the link, exactly as the feed writes it. */
  id: string;
  title?: string;
  /** The essay's absolute http(s) address, resolved against the feed's. */
  url?: string;
  /** Plain text, at most SUMMARY_MAX characters. */
  summary?: string;
  /** When it was published (else updated), if the feed says and the date can be read. */
  date?: Date;
}

const TITLE_MAX = 300;
const SUMMARY_MAX = 500;

/**
 * Reads an RSS 2.0, Atom, RSS 1.0 (RDF) or JSON Feed document into its entries, in document order.
 * XML must be well-formed: a truncated or garbled feed is refused whole rather than half read.
 */
export function parseFeedEntries(text: string, feedUrl: string): FeedEntry[] {
  const json = /^\s*[{[]/.test(text);
  if (!json) {
    const valid = XMLValidator.validate(text);
    if (valid !== true) {
      throw new FeedError(`it is not well-formed XML (line ${valid.err.line}: ${valid.err.msg})`);
    }
  }
  let parsed: AnyFeed;
  try {
    parsed = parseFeed(json ? parseJson(text) : text);
  } catch (error) {
    if (error instanceof FeedError) throw error;
    throw new FeedError(`it is not an RSS, Atom or JSON feed (${(error as Error).message})`);
  }
  const raw = rawEntries(parsed, feedUrl);
  const seen = new Set<string>();
  const entries: FeedEntry[] = [];
  for (const entry of raw) {
    // An entry without any id can't be told apart from the next one: it is left out.
    if (!entry.id || seen.has(entry.id)) continue;
    seen.add(entry.id);
    entries.push({ ...entry, id: entry.id });
  }
  return entries;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new FeedError('it is not valid JSON');
  }
}

interface RawEntry extends Omit<FeedEntry, 'id'> {
  id: string | undefined;
}

function rawEntries(parsed: AnyFeed, feedUrl: string): RawEntry[] {
  switch (parsed.format) {
    case 'rss':
      return (parsed.feed.items ?? []).map((item) => {
        const guid = trimmed(item.guid?.value);
        const link = trimmed(item.link);
        const guidIsLink = guid && item.guid?.isPermaLink !== false ? guid : undefined;
        return entry({
          id: guid ?? link,
          title: item.title === undefined ? undefined : fromText(item.title),
          url: absolute(link ?? guidIsLink, feedUrl),
          summary: fromHtml(item.description),
          date: item.pubDate ?? item.dc?.dates?.[0],
        });
      });
    case 'atom':
      return (parsed.feed.entries ?? []).map((e) => {
        const links = e.links ?? [];
        const alternate =
          links.find((l) => (!l.rel || l.rel === 'alternate') && (!l.type || /html/i.test(l.type))) ??
          links.find((l) => !l.rel || l.rel === 'alternate');
        const href = trimmed(alternate?.href);
        return entry({
          id: trimmed(e.id) ?? href,
          title: atomText(e.title),
          url: absolute(href, feedUrl),
          summary: atomText(e.summary),
          date: e.published ?? e.updated,
        });
      });
    case 'rdf':
      return (parsed.feed.items ?? []).map((item) => {
        const link = trimmed(item.link);
        return entry({
          id: trimmed(item.rdf?.about) ?? link,
          title: item.title === undefined ? undefined : fromText(item.title),
          url: absolute(link, feedUrl),
          summary: fromHtml(item.description),
          date: item.dc?.dates?.[0],
        });
      });
    case 'json':
      return (parsed.feed.items ?? []).map((item) => {
        const link = trimmed(item.url);
        return entry({
          id: trimmed(item.id) ?? link,
          title: item.title === undefined ? undefined : fromText(item.title),
          url: absolute(link, feedUrl),
          summary: fromText(item.summary) ?? fromHtml(item.content_html) ?? fromText(item.content_text),
          date: item.date_published ?? item.date_modified,
        });
      });
  }
}

function entry(e: { id?: string; title?: string; url?: string; summary?: string; date?: string }): RawEntry {
  const time = e.date ? Date.parse(e.date) : Number.NaN;
  return {
    id: e.id,
    title: cut(e.title, TITLE_MAX),
    url: e.url,
    summary: cut(e.summary, SUMMARY_MAX),
    date: Number.isNaN(time) ? undefined : new Date(time),
  };
}

function atomText(text: { value?: string; type?: string } | undefined): string | undefined {
  if (!text?.value) return undefined;
  return text.type === 'html' || text.type === 'xhtml' ? fromHtml(text.value) : fromText(text.value);
}

/** Plain text that may still carry HTML entities (titles often do): decoded, one line, no control characters. */
function fromText(value: string | undefined): string | undefined {
  if (!value) return undefined;
  return oneLine(decodeHTML(value));
}

/** HTML made plain text: no tags, scripts, styles or comments; entities decoded; whitespace collapsed. */
function fromHtml(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const text = value
    .replace(/<(script|style)\b[\s\S]*?<\/\1\s*>/gi, ' ')
    .replace(/<!--[\s\S]*?-->/g, ' ')
    .replace(/<[^>]*>/g, ' ');
  return oneLine(decodeHTML(text));
}

function oneLine(value: string): string | undefined {
  return value.replace(/[\p{Cc}\s]+/gu, ' ').trim() || undefined;
}

/** At most `max` characters, cut at a word where one is near, with an ellipsis. */
function cut(value: string | undefined, max: number): string | undefined {
  if (!value || value.length <= max) return value;
  const head = value.slice(0, max - 1);
  const space = head.lastIndexOf(' ');
  return `${(space > max * 0.6 ? head.slice(0, space) : head).trimEnd()}…`;
}

function trimmed(value: string | undefined): string | undefined {
  return value?.trim() || undefined;
}

/** An absolute http(s) address, or nothing. */
function absolute(href: string | undefined, base: string): string | undefined {
  if (!href) return undefined;
  try {
    const url = new URL(href, base);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : undefined;
  } catch {
    return undefined;
  }
}
