import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './support/process.js';
import type { TestService } from './support/service.js';
import { createTestService, listenOnFreePort, PUBLISHER_TOKEN } from './support/service.js';

describe('the publisher CLI', () => {
  let s: TestService;
  let server: Awaited<ReturnType<typeof listenOnFreePort>> | undefined;
  let api: string;

  beforeAll(async () => {
    s = await createTestService({ DISPATCH_POLL_MS: '50' });
    await s.database.db.execute(
      (await import('drizzle-orm')).sql`
        insert into subscribers (email, status, unsubscribe_token)
        select 'cli' || i || '@example.org', 'confirmed', md5(i::text) || 'abcdefghijk'
        from generate_series(1, 30) as i`,
    );
    server = await listenOnFreePort(s);
    api = server.url;
    s.dispatcher.start();
  });
  afterAll(async () => {
    await server?.close();
    await s?.close();
  });

  const cli = (args: string[], env: Record<string, string> = {}) =>
    runCli(args, { ...process.env, PUBLISHER_TOKEN, ...env });

  it('publishes through the API, waits for the send-out, and prints a summary', async () => {
    const result = await cli([
      'publish',
      'cli-essay',
      '--title',
      'From the CLI',
      '--url',
      'https://example.org/cli',
      '--api',
      api,
    ]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('30 confirmed subscribers');
    expect(result.stdout).toContain('Send-out done: 30 sent, 0 failed, 0 skipped, 0 unknown');
    expect(new Set(s.smtp.received.map((m) => m.to)).size).toBe(30);
  });

  it('publishing the same slug again sends nothing more', async () => {
    const result = await cli([
      'publish',
      'cli-essay',
      '--title',
      'x',
      '--url',
      'https://example.org/x',
      '--api',
      api,
    ]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('already published');
    expect(s.smtp.received).toHaveLength(30);
  });

  it('explains bad arguments and a wrong token', async () => {
    const noUrl = await cli(['publish', 'x', '--title', 'x', '--api', api]);
    expect(noUrl.code).toBe(2);
    expect(noUrl.stderr).toContain('url');
    const wrong = await cli(
      ['publish', 'y', '--title', 'y', '--url', 'https://example.org/y', '--api', api],
      {
        PUBLISHER_TOKEN: 'a-wrong-token-of-enough-length',
      },
    );
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain('401');
  });
});
