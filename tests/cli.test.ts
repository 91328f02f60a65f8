import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rows } from '../src/db/client.js';
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

  it('refuses a word it does not take, such as the rest of an unquoted title, and changes nothing', async () => {
    const count = async (table: 'essays' | 'subscribers') =>
      (
        await rows<{ n: number }>(s.database.db, sql`select count(*)::int as n from ${sql.identifier(table)}`)
      )[0]?.n;
    const [essaysBefore, subscribersBefore, sentBefore] = [
      await count('essays'),
      await count('subscribers'),
      s.smtp.received.length,
    ];
    const cases: [string[], string][] = [
      // `--title On running` unquoted: the title would be "On", and the letter can't be taken back.
      [
        ['publish', 'on-running', '--title', 'On', 'running', '--url', 'https://example.org/r', '--api', api],
        '"running"',
      ],
      [['subscribers', 'erase', 'cli1@example.org', 'cli2@example.org', '--api', api], '"cli2@example.org"'],
      [['subscribers', 'export', 'everyone', '--api', api], '"everyone"'],
      [['stats', 'now', '--api', api], '"now"'],
      [['feed', 'send', 'https://example.org/a', 'b', '--api', api], '"b"'],
    ];
    for (const [args, word] of cases) {
      const result = await cli(args);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr, args.join(' ')).toContain(`Unexpected ${word}`);
      expect(result.stderr, args.join(' ')).toContain('goes in quotes');
      expect(result.stderr, args.join(' ')).toContain('Usage:');
    }
    expect(await count('essays')).toBe(essaysBefore);
    expect(await count('subscribers')).toBe(subscribersBefore);
    expect(s.smtp.received).toHaveLength(sentBefore);
  });

  it('answers --help for the CLI and each of its commands, on standard output with exit 0', async () => {
    for (const args of [['--help'], ['-h'], []]) {
      const result = await cli(args);
      expect(result.code, args.join(' ')).toBe(0);
      expect(result.stdout, args.join(' ')).toMatch(/^Usage: npm run cli -- <command>/);
    }
    const overview = await cli(['--help']);
    for (const command of ['publish', 'resend-unknown', 'subscribers', 'stats', 'feed', 'doctor'])
      expect(overview.stdout).toContain(command);
  });

  it('gives every command and subcommand its own --help: its usage, what it does, an example', async () => {
    // Each command's words, and how its usage line begins.
    const commands: [string[], string][] = [
      [['publish'], 'npm run publish -- <slug>'],
      [['resend-unknown'], 'npm run cli -- resend-unknown <slug>'],
      [['subscribers'], 'npm run cli -- subscribers <export|import|erase>'],
      [['subscribers', 'export'], 'npm run cli -- subscribers export'],
      [['subscribers', 'import'], 'npm run cli -- subscribers import FILE'],
      [['subscribers', 'erase'], 'npm run cli -- subscribers erase <email-or-id>'],
      [['stats'], 'npm run cli -- stats'],
      [['feed', 'send'], 'npm run cli -- feed send <entry>'],
      [['doctor'], 'npm run doctor'],
    ];
    const texts = new Set<string>();
    for (const [words, usage] of commands) {
      const { code, stdout } = await cli([...words, '--help']);
      const named = words.join(' ');
      expect(code, named).toBe(0);
      expect(stdout.startsWith(`Usage: ${usage}`), `${named}:\n${stdout}`).toBe(true);
      expect(stdout.split('\nExample:\n')[1], named).toMatch(new RegExp(`^  npm run (\\S+ -- )?${named} `));
      texts.add(stdout);
    }
    expect(texts.size, 'each command prints a text of its own').toBe(commands.length);
  });

  it('names the command whose --help lists the options when an option is unknown', async () => {
    const result = await cli(['subscribers', 'export', '--colour']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("Unknown option '--colour'");
    expect(result.stderr).toContain('npm run cli -- subscribers export --help');
  });

  it('tells a missing token from a wrong one', async () => {
    const publishArgs = ['publish', 'z', '--title', 'z', '--url', 'https://example.org/z', '--api', api];
    // No PUBLISHER_TOKEN, and no token file where DATA_DIR points.
    const missing = await cli(publishArgs, { PUBLISHER_TOKEN: '', DATA_DIR: '/nonexistent/oneletter' });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('No publisher token');
    const wrong = await cli(publishArgs, { PUBLISHER_TOKEN: 'a-wrong-token-of-enough-length' });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain('refused the publisher token (401)');
    expect(wrong.stderr).not.toContain('No publisher token');
    for (const args of [
      ['stats', '--api', api],
      ['feed', 'send', 'x', '--api', api],
    ]) {
      const none = await cli(args, { PUBLISHER_TOKEN: '', DATA_DIR: '/nonexistent/oneletter' });
      expect(none.stderr, args[0]).toContain('No publisher token');
      const bad = await cli(args, { PUBLISHER_TOKEN: 'a-wrong-token-of-enough-length' });
      expect(bad.stderr, args[0]).toContain('refused the publisher token (401)');
    }
  });
});
