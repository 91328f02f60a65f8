import { describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config.js';
import { createLogger, logFormatFor } from '../src/log.js';

describe('the log', () => {
  it('writes each entry as one line of JSON: its time, its level, then its fields', () => {
    const lines: string[] = [];
    const log = createLogger((line) => lines.push(line));
    log.info({ msg: 'request', method: 'POST', path: '/subscribe', status: 202, ms: 3 });
    log.warn({});
    log.error({ msg: 'a "quoted"\nmessage', nested: { a: [1, null] }, gone: undefined });
    expect(lines).toHaveLength(3);
    for (const line of lines) expect(line.endsWith('\n') && !line.slice(0, -1).includes('\n')).toBe(true);
    const [info, warn, error] = lines.map((line) => JSON.parse(line));
    expect(Object.keys(info)).toEqual(['time', 'level', 'msg', 'method', 'path', 'status', 'ms']);
    expect(info).toMatchObject({ level: 'info', msg: 'request', status: 202 });
    expect(Date.parse(info.time)).toBeGreaterThan(Date.now() - 60_000);
    expect(info.time).toBe(new Date(Date.parse(info.time)).toISOString());
    expect(warn).toEqual({ time: warn.time, level: 'warn' });
    expect(error).toEqual({
      time: error.time,
      level: 'error',
      msg: 'a "quoted"\nmessage',
      nested: { a: [1, null] },
    });
  });

  it('writes a line of words for a terminal: time, level, message, then key=value', () => {
    const lines: string[] = [];
    const log = createLogger((line) => lines.push(line), 'text');
    log.warn({ msg: 'expired claims reaped', released: 3, unknown: 0, where: 'two words', detail: { a: 1 } });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^\d\d:\d\d:\d\d warn {2}expired claims reaped released=3 unknown=0 where="two words" detail=\{"a":1\}\n$/,
    );
  });

  it('LOG_FORMAT=auto: words on a terminal, JSON lines anywhere else; text and json as asked', () => {
    expect(logFormatFor('auto', true)).toBe('text');
    expect(logFormatFor('auto', false)).toBe('json');
    expect(logFormatFor('auto', undefined)).toBe('json');
    expect(logFormatFor('json', true)).toBe('json');
    expect(logFormatFor('text', false)).toBe('text');
    expect(parseConfig({}).logFormat).toBe('auto');
    expect(() => parseConfig({ LOG_FORMAT: 'yaml' })).toThrow(
      /LOG_FORMAT="yaml": expected auto, text or json/,
    );
  });
});
