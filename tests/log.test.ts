import { describe, expect, it } from 'vitest';
import { createLogger } from '../src/log.js';

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
});
