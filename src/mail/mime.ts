import { randomBytes } from 'node:crypto';
import addressparser from 'nodemailer/lib/addressparser';
import { encodeWords, foldLines, isPlainText } from 'nodemailer/lib/mime-funcs';
import { encode as qpEncode, wrap as qpWrap } from 'nodemailer/lib/qp';
import type { RawEmail } from './mailer.js';
import type { RenderedEmail } from './render.js';

/**
 * Assembles letters as raw MIME (RFC 5322, RFC 2045) from a template rendered once per send-out: what
 * differs per subscriber goes into the rendered text as a marker and is put in place per letter. Every
 * line a marker is not on is encoded once; a letter is then a join of ready strings.
 */

/** Stands for a value rendered per letter. Letters and digits only: escaping, QP and URLs leave it as is. */
export function marker(name: string): string {
  return `X${name}x${randomBytes(8).toString('hex')}X`;
}

/** What a letter's template varies by. */
export interface LetterFields {
  /** The envelope recipient and the To header. */
  to: string;
  /** Without angle brackets. */
  messageId: string;
  /** Extra headers of this letter alone (List-Unsubscribe), ASCII, one line each. */
  headers: Record<string, string>;
  /** Marker → value, put in place in the subject and both parts (the HTML part gets it HTML-escaped). */
  values: Map<string, string>;
}

/** One template, many letters. */
export interface LetterTemplate {
  build(fields: LetterFields): RawEmail;
}

/** Encoded text laid out once, or a line holding a marker, encoded per letter. */
type Piece = Buffer | { line: string };

/**
 * Compiles a rendered letter (subject, text, HTML, possibly holding markers) and its fixed headers into a
 * template. The parts are quoted-printable UTF-8, so any text goes through any server (no 8BITMIME needed)
 * and no line is longer than 76 characters.
 */
export function compileLetter(
  from: string,
  rendered: RenderedEmail,
  fixedHeaders: Record<string, string>,
  markers: string[],
): LetterTemplate {
  const boundary = `--_oneletter_${randomBytes(12).toString('hex')}`;
  const sender = addressparser(from, { flatten: true })[0]?.address ?? from;
  const has = (s: string) => markers.some((m) => s.includes(m));
  const head = [
    `From: ${formatAddress(from)}`,
    ...Object.entries(fixedHeaders).map(([k, v]) => foldLines(`${k}: ${v}`, 76)),
    'MIME-Version: 1.0',
    `Content-Type: multipart/alternative; boundary="${boundary}"`,
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: quoted-printable',
    '',
    '',
  ].join('\r\n');
  const text = encodeBody(rendered.text, has);
  const middle = [
    '',
    `--${boundary}`,
    'Content-Type: text/html; charset=utf-8',
    'Content-Transfer-Encoding: quoted-printable',
    '',
    '',
  ].join('\r\n');
  const html = encodeBody(rendered.html, has);
  const tail = `\r\n--${boundary}--\r\n`;
  const subjectHasMarker = has(rendered.subject);
  const fixedSubject = subjectHasMarker ? '' : subjectHeader(rendered.subject);
  // The fixed text, as bytes once: a letter is then a copy of these around the few bytes it varies by.
  const fixed = [head, middle, tail].map((part) => Buffer.from(part, 'utf8'));
  const [headBytes, middleBytes, tailBytes] = fixed as [Buffer, Buffer, Buffer];

  return {
    build({ to, messageId, headers, values }) {
      const plain = (line: string) => replaceAll(line, values, false);
      const escaped = (line: string) => replaceAll(line, values, true);
      let top = `${subjectHasMarker ? subjectHeader(plain(rendered.subject)) : fixedSubject}\r\nTo: ${to}\r\nDate: ${rfc2822Date()}\r\nMessage-ID: <${messageId}>\r\n`;
      for (const name in headers) top += `${name}: ${headers[name]}\r\n`;
      const varying = [top];
      const parts = [Buffer.from(top, 'utf8'), headBytes];
      lay(parts, varying, text, plain);
      parts.push(middleBytes);
      lay(parts, varying, html, escaped);
      parts.push(tailBytes);
      return {
        envelope: { from: sender, to },
        raw: Buffer.concat(parts),
        messageId,
        subject: rendered.subject,
      };
    },
  };
}

/** A body as encoded lines; lines holding a marker stay raw, to be encoded per letter. */
function encodeBody(body: string, has: (s: string) => boolean): Piece[] {
  const out: Piece[] = [];
  const lines = body.replace(/\r\n?/g, '\n').split('\n');
  let run: string[] = [];
  const endRun = (last: boolean) => {
    // Each piece but the body's last ends with its line break, so pieces lay end to end.
    if (run.length) out.push(Buffer.from(run.join('\r\n') + (last ? '' : '\r\n'), 'utf8'));
    run = [];
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    if (!has(line)) {
      run.push(encodeLine(line));
      continue;
    }
    endRun(false);
    out.push({ line: i === lines.length - 1 ? line : `${line}\n` });
  }
  endRun(true);
  return out;
}

/** Lays a body's pieces into a letter; the text of the lines encoded for this letter goes to `varying` too. */
function lay(parts: Buffer[], varying: string[], body: Piece[], fill: (line: string) => string): void {
  for (const piece of body) {
    if (Buffer.isBuffer(piece)) {
      parts.push(piece);
      continue;
    }
    const broken = piece.line.endsWith('\n');
    const encoded = encodeLine(fill(broken ? piece.line.slice(0, -1) : piece.line)) + (broken ? '\r\n' : '');
    varying.push(encoded);
    parts.push(Buffer.from(encoded, 'utf8'));
  }
}

/** One line of text, quoted-printable, soft-wrapped at 76 characters. */
function encodeLine(line: string): string {
  return qpWrap(qpEncode(line), 76);
}

const HTML_ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&#34;',
  "'": '&#39;',
};

function replaceAll(line: string, values: Map<string, string>, html: boolean): string {
  let out = line;
  for (const [mark, value] of values) {
    if (!out.includes(mark)) continue;
    out = out.split(mark).join(html ? value.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c] as string) : value);
  }
  return out;
}

function subjectHeader(subject: string): string {
  const value = isPlainText(subject) ? subject : encodeWords(subject, 'Q', 52);
  return foldLines(`Subject: ${value}`, 76).replace(/\r\n$/, '');
}

/** `Name <address>`, the name quoted or RFC 2047-encoded as it needs. */
function formatAddress(value: string): string {
  const [first] = addressparser(value, { flatten: true });
  if (!first) return value;
  if (!first.name) return first.address;
  const name = isPlainText(first.name)
    ? /^[\w !#$%&'*+/=?^`{|}~-]*$/.test(first.name)
      ? first.name
      : `"${first.name.replace(/["\\]/g, '\\$&')}"`
    : encodeWords(first.name, 'Q', 52);
  return foldLines(`${name} <${first.address}>`, 76 - 'From: '.length).replace(/\r\n$/, '');
}

let dateSecond = 0;
let dateText = '';

/** The Date header value, made once a second. */
function rfc2822Date(): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateText = new Date(now).toUTCString().replace(/GMT$/, '+0000');
  }
  return dateText;
}
