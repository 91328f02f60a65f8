import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve } from '@hono/node-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './support/process.js';
import type { TestService } from './support/service.js';
import { createTestService, PUBLISHER_TOKEN } from './support/service.js';

describe('the publisher CLI: subscribers and stats', () => {
  let s: TestService;
  let server: ReturnType<typeof serve>;
  let api: string;
  let dir: string;

  beforeAll(async () => {
    s = await createTestService();
    await new Promise<void>((resolve) => {
      server = serve({ fetch: s.app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve());
    });
    api = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    dir = await mkdtemp(join(tmpdir(), 'oneletter-cli-'));
  });
  afterAll(async () => {
    await new Promise((resolve) => server?.close(resolve));
    await s?.close();
  });

  const cli = (args: string[], env: Record<string, string> = {}) =>
    runCli([...args, '--api', api], { ...process.env, PUBLISHER_TOKEN, ...env });

  it('imports a file, listing its bad lines, and a second import changes nothing', async () => {
    const file = join(dir, 'in.csv');
    await writeFile(
      file,
      'email,name,status\ncli-a@example.org,A,confirmed\nbroken,,\ncli-b@example.org,B,\n',
    );
    const first = await cli(['subscribers', 'import', file]);
    expect(first.code).toBe(0);
    expect(first.stderr).toContain(
      'Imported 3 rows: 2 new (1 confirmed, 1 sent a confirmation email, 0 unsubscribed, 0 bounced), ' +
        '0 confirmed now, 0 unchanged, 1 refused; 2 + 0 + 0 + 1 = 3 rows read.',
    );
    expect(first.stdout).toContain('line 3: email:');
    const second = await cli(['subscribers', 'import', file]);
    expect(second.stderr).toContain('0 new');
    expect(second.stderr).toContain('2 unchanged');
  });

  it('imports a Mailchimp export as it is: names joined, counts that add up, ignored columns named', async () => {
    const file = join(dir, 'unsubscribed_members_export_1a2b3c.csv');
    await writeFile(
      file,
      [
        '"Email Address","First Name","Last Name",MEMBER_RATING,OPTIN_TIME,CONFIRM_TIME,UNSUB_TIME,UNSUB_REASON,LEID',
        'cli-mc-a@example.org,Ann,Bee,2,,"2023-01-01 10:00:00",,,1',
        'cli-mc-b@example.org,Cy,Dee,2,,"2023-01-01 10:00:00","2024-01-01 10:00:00","no longer interested",2',
      ].join('\r\n'),
    );
    const r = await cli(['subscribers', 'import', file]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(
      'Imported 2 rows: 2 new (1 confirmed, 0 sent a confirmation email, 1 unsubscribed, 0 bounced), ' +
        '0 confirmed now, 0 unchanged, 0 refused; 2 + 0 + 0 + 0 = 2 rows read. ' +
        'Ignored columns: MEMBER_RATING, UNSUB_REASON, LEID.',
    );
    await cli(['subscribers', 'erase', 'cli-mc-a@example.org']);
    await cli(['subscribers', 'erase', 'cli-mc-b@example.org']);
  });

  it('exports to a file with progress, and shows stats', async () => {
    const out = join(dir, 'out.csv');
    const exported = await cli(['subscribers', 'export', '--out', out, '--status', 'confirmed']);
    expect(exported.code).toBe(0);
    expect(exported.stderr).toContain(`Exported 1 subscribers to ${out}`);
    expect(await readFile(out, 'utf8')).toMatch(/^email,name,status.*\r\ncli-a@example\.org,A,confirmed,/s);
    const stats = await cli(['stats', '--days', '2']);
    expect(stats.code).toBe(0);
    expect(stats.stdout).toContain('Subscribers: 2 (1 confirmed, 1 pending, 0 unsubscribed, 0 bounced)');
  });

  it('erases a subscriber, and says so in one line when there is none', async () => {
    const erased = await cli(['subscribers', 'erase', 'cli-a@example.org']);
    expect(erased.code).toBe(0);
    expect(erased.stdout).toContain('Erased cli-a@example.org');
    const again = await cli(['subscribers', 'erase', 'cli-a@example.org']);
    expect(again.code).toBe(1);
    expect(again.stderr.trim().split('\n')).toHaveLength(1);
    expect(again.stderr).toMatch(/^subscribers erase failed: 404: No subscriber/);
  });

  it('refuses a wrong token and a missing file with one clear line and a non-zero exit', async () => {
    const wrong = await cli(['stats'], { PUBLISHER_TOKEN: 'not-the-token-0123456789' });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/^stats failed: The service at \S+ refused the publisher token \(401\)/);
    const missing = await cli(['subscribers', 'import', join(dir, 'nope.csv')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^subscribers import failed: Cannot read/);
  });
});
