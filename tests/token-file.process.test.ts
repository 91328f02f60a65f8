import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../src/config.js';
import { cliToken, withTokenFile } from '../src/entry/key-file.js';
import type { ProcessDatabase } from './support/process.js';
import {
  createProcessDatabase,
  killServiceProcesses,
  runCli,
  startServiceProcess,
} from './support/process.js';

/** Issue 23: the publisher token made at the first start stays, so the dashboard and the CLI keep working. */

const folders: string[] = [];
const folder = async () => {
  const dir = await mkdtemp(join(tmpdir(), 'oneletter-token-'));
  folders.push(dir);
  return dir;
};
afterEach(async () => {
  for (const dir of folders.splice(0)) await rm(dir, { recursive: true, force: true });
});

describe('the publisher token file', () => {
  it('is made once in DATA_DIR, readable by its owner only, and read back at every later start', async () => {
    const dir = await folder();
    const first = withTokenFile({ DATA_DIR: dir });
    expect(first.tokenFile).toEqual({ path: join(dir, 'publisher-token'), made: true });
    const token = first.env.PUBLISHER_TOKEN as string;
    expect(token.length).toBeGreaterThanOrEqual(32);
    expect((await stat(join(dir, 'publisher-token'))).mode & 0o777).toBe(0o600);
    expect((await readFile(join(dir, 'publisher-token'), 'utf8')).trim()).toBe(token);

    const again = withTokenFile({ DATA_DIR: dir });
    expect(again.tokenFile?.made).toBe(false);
    expect(again.env.PUBLISHER_TOKEN).toBe(token);
    expect(cliToken({ DATA_DIR: dir })).toBe(token);
  });

  it('is neither read nor made when PUBLISHER_TOKEN is set, or in production (which requires it)', async () => {
    const dir = await folder();
    const set = withTokenFile({ DATA_DIR: dir, PUBLISHER_TOKEN: 'a-token-of-my-own-choosing' });
    expect(set.tokenFile).toBeUndefined();
    expect(set.env.PUBLISHER_TOKEN).toBe('a-token-of-my-own-choosing');
    expect(withTokenFile({ DATA_DIR: dir, NODE_ENV: 'production' }).tokenFile).toBeUndefined();
    await expect(stat(join(dir, 'publisher-token'))).rejects.toThrow(/ENOENT/);
    // The CLI never makes one: without a token and a file, it has none.
    expect(cliToken({ DATA_DIR: dir })).toBeUndefined();
  });

  it('says plainly when the folder cannot hold it', async () => {
    const dir = await folder();
    await writeFile(join(dir, 'a-file'), '');
    expect(() => withTokenFile({ DATA_DIR: join(dir, 'a-file') })).toThrow(ConfigError);
    expect(() => withTokenFile({ DATA_DIR: join(dir, 'a-file') })).toThrow(/cannot be written/);
  });
});

describe('the service started without PUBLISHER_TOKEN', { timeout: 120_000 }, () => {
  let database: ProcessDatabase | undefined;
  afterEach(async (context) => {
    await killServiceProcesses(context);
    await database?.destroy();
  });

  it('keeps its token across restarts, says where it is, and the CLI run beside it uses it', async () => {
    database = await createProcessDatabase();
    const dataDir = database.env.DATA_DIR ?? (await folder());
    const env = { ...database.env, DATA_DIR: dataDir, PUBLISHER_TOKEN: '' };
    const shownToken = (stdout: string) => /publisher-token[^\n]*:\n\n {4}(\S+)/.exec(stdout)?.[1];

    const first = await startServiceProcess(env);
    await first.ready();
    await first.waitForOutput('publisher-token');
    expect(first.output.stdout).toContain(join(dataDir, 'publisher-token'));
    expect(first.output.stdout).toContain('(made now)');
    const token = shownToken(first.output.stdout);
    expect(token).toBe((await readFile(join(dataDir, 'publisher-token'), 'utf8')).trim());
    await first.stop();

    const second = await startServiceProcess(env);
    await second.ready();
    await second.waitForOutput('publisher-token');
    expect(second.output.stdout).not.toContain('(made now)');
    expect(shownToken(second.output.stdout)).toBe(token);
    const answer = await fetch(`${second.url}/api/stats`, { headers: { authorization: `Bearer ${token}` } });
    expect(answer.status).toBe(200);

    const cliEnv = { PATH: process.env.PATH, HOME: process.env.HOME, DATA_DIR: dataDir };
    const stats = await runCli(['stats', '--api', second.url], cliEnv);
    expect(stats.stderr).toBe('');
    expect(stats.code).toBe(0);
  });
});
