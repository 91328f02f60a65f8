/**
 * A small RFC 4180 reader that recovers from bad rows. Libraries (csv-parse, papaparse) stop or lose their
 * place at a malformed quote: everything after it is swallowed into one field. Here a record that can't be
 * read is reported by its line number, and reading starts again at the next line, so one bad row costs one row.
 */

/** A record's fields, or why it can't be read; `line` is where the record starts (1-based). */
export type CsvRecord = { line: number; fields: string[] } | { line: number; error: string };

/** A quoted field may span lines; one that is still open after this many is taken as unclosed. */
const MAX_RECORD_LINES = 100;
const MAX_RECORD_CHARS = 64 * 1024;

type Parsed = { fields: string[] } | { open: true } | { error: string };

function parseRecord(text: string): Parsed {
  const fields: string[] = [];
  let i = 0;
  for (;;) {
    if (text[i] === '"') {
      let value = '';
      i++;
      for (;;) {
        const q = text.indexOf('"', i);
        if (q === -1) return { open: true };
        value += text.slice(i, q);
        if (text[q + 1] === '"') {
          value += '"';
          i = q + 2;
          continue;
        }
        i = q + 1;
        break;
      }
      fields.push(value);
      if (i === text.length) return { fields };
      if (text[i] !== ',') {
        return { error: `field ${fields.length}: a quoted field must end at a comma or the end of the line` };
      }
      i++;
    } else {
      const comma = text.indexOf(',', i);
      fields.push(text.slice(i, comma === -1 ? text.length : comma));
      if (comma === -1) return { fields };
      i = comma + 1;
    }
  }
}

/** Splits a byte stream into lines (LF or CRLF), decoding UTF-8 and dropping a byte-order mark. */
async function* lines(body: AsyncIterable<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder('utf-8');
  let rest = '';
  let first = true;
  for await (const chunk of body) {
    rest += decoder.decode(chunk, { stream: true });
    if (first && rest.length > 0) {
      if (rest.charCodeAt(0) === 0xfeff) rest = rest.slice(1);
      first = false;
    }
    let nl = rest.indexOf('\n');
    let start = 0;
    while (nl !== -1) {
      yield rest.slice(start, nl > start && rest[nl - 1] === '\r' ? nl - 1 : nl);
      start = nl + 1;
      nl = rest.indexOf('\n', start);
    }
    rest = rest.slice(start);
  }
  rest += decoder.decode();
  if (rest !== '') yield rest.endsWith('\r') ? rest.slice(0, -1) : rest;
}

/** Reads CSV records from a byte stream, one at a time (memory: one record). Blank lines are skipped. */
export async function* csvRecords(body: AsyncIterable<Uint8Array>): AsyncGenerator<CsvRecord> {
  const source = lines(body);
  /** Lines to read again after an unclosed quote swallowed them. */
  const replay: { text: string; n: number }[] = [];
  let lineNo = 0;
  let record: { start: number; lines: { text: string; n: number }[]; chars: number } | undefined;

  const next = async (): Promise<{ text: string; n: number } | undefined> => {
    const again = replay.shift();
    if (again) return again;
    const r = await source.next();
    if (r.done) return undefined;
    lineNo++;
    return { text: r.value, n: lineNo };
  };

  for (;;) {
    const line = await next();
    if (!line) {
      if (!record) return;
      // The input ended inside a quoted field: the lines after its start are records of their own.
      yield { line: record.start, error: 'a quoted field is not closed' };
      replay.push(...record.lines.slice(1));
      record = undefined;
      continue;
    }
    if (!record) {
      if (line.text.trim() === '') continue;
      record = { start: line.n, lines: [line], chars: line.text.length };
    } else {
      record.lines.push(line);
      record.chars += line.text.length + 1;
    }
    const parsed = parseRecord(record.lines.map((l) => l.text).join('\n'));
    if ('open' in parsed) {
      if (record.lines.length < MAX_RECORD_LINES && record.chars < MAX_RECORD_CHARS) continue;
      yield { line: record.start, error: 'a quoted field is not closed' };
      replay.unshift(...record.lines.slice(1));
    } else if ('error' in parsed) {
      yield { line: record.start, error: parsed.error };
    } else {
      yield { line: record.start, fields: parsed.fields };
    }
    record = undefined;
  }
}
