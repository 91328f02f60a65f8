import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { testDbKind } from './support/db.js';

const ROOT = join(import.meta.dirname, '..');

/** Whether the benchmark still runs end to end: its figures are not checked here, only that it makes them. */
describe.runIf(testDbKind === 'postgres')('npm run bench -- --quick', () => {
  it('runs every benchmark, prints the table with its baselines, and writes it as JSON', async () => {
    expect(existsSync('/usr/sbin/smtp-sink'), "Postfix's smtp-sink is needed (apt-get install postfix)").toBe(
      true,
    );
    const { code, stdout, stderr } = await new Promise<{
      code: number | null;
      stdout: string;
      stderr: string;
    }>((resolve) => {
      const child = spawn(process.execPath, ['--import', 'tsx', 'bench/run.ts', '--quick'], {
        cwd: ROOT,
        env: { ...process.env, NODE_ENV: '' },
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('exit', (code) => resolve({ code, stdout, stderr }));
    });
    expect(code, stderr).toBe(0);
    expect(stdout).toContain('### Send-out');
    expect(stdout).toMatch(/\| 2,000 \|.*2,000 \/ 2,000 ✓ \|/);
    expect(stdout).toContain('### POST /subscribe');
    expect(stdout).toMatch(/\| Hono hello-world \|/);
    expect(stdout).toContain('### Publisher tools');
    expect(stdout).toMatch(/\| 2,000 \| .*\(2,000\) \|.*✓ \|/);
    const written = JSON.parse(readFileSync(join(ROOT, 'bench/results/latest-quick.json'), 'utf8'));
    expect(written.quick).toBe(true);
    expect(written.sendout[0]).toMatchObject({ n: 2000, correct: true });
    expect(written.subscribe.service.new.total).toBeGreaterThan(0);
    // Both servers answer every scenario as expected: 202, 422 for the invalid address, and 303 for a form
    // post, as a browser's form expects (anything else counts as unexpected; a stray socket error at the
    // end of a one-second run may too).
    expect(stdout).toMatch(/\| new, as a form post \|/);
    for (const server of [written.subscribe.service, written.subscribe.raw]) {
      for (const scenario of ['new', 'repeated', 'invalid', 'form']) {
        expect(server[scenario].total, scenario).toBeGreaterThan(0);
        expect(server[scenario].unexpected, scenario).toBeLessThan(server[scenario].total / 10);
      }
    }
    // CPU figures come from /proc: a send-out and a request always cost some.
    expect(stdout).toContain('Where the CPU went');
    expect(written.sendout[0].cpuPerMessageUs.dispatcher).toBeGreaterThan(0);
    expect(written.sendout[0].cpuPerMessageUs.sink).toBeGreaterThan(0);
    expect(written.sendout[0].cpuPerMessageUs.postgres).toBeGreaterThan(0);
    expect(written.subscribe.service.invalid.cpuPerRequestUs.server).toBeGreaterThan(0);
    // POST /subscribe with ALTCHA off and on: both answer every request as expected (with it on, each carries
    // a payload of its own solved beforehand: a reused or missing one would be refused, and counted).
    expect(stdout).toContain('### POST /subscribe with ALTCHA off and on');
    expect(stdout).toMatch(/\| JSON \| 1 \|.*\| [\d.]+× \|/);
    expect(stdout).toMatch(/\| form post \| 1 \|/);
    expect(stdout).toMatch(/\| ALTCHA on \| 1 \|/);
    expect(written.altcha.maxCounter).toBe(1);
    for (const run of written.altcha.runs) {
      expect(run.load.total, `${run.mode} ${run.scenario}`).toBe(written.altcha.requests);
      expect(run.load.unexpected, `${run.mode} ${run.scenario}`).toBe(0);
    }
    expect(
      written.altcha.runs.map((r: { mode: string; scenario: string }) => `${r.mode} ${r.scenario}`),
    ).toEqual(['off json', 'on json', 'off form', 'on form', 'on challenge']);
    expect(written.publisherTools[0]).toMatchObject({
      n: 2000,
      importRows: 2000,
      exportRows: 2000,
      correct: true,
    });
    expect(stdout).toContain('### Dashboard');
    expect(stdout).toMatch(/\| 2,000 \| 20,010 \| .*\| overview \(`\/admin`\) \|/);
    expect(written.dashboard[0]).toMatchObject({ n: 2000, deliveries: 20_010, correct: true });
  }, 300_000);
});
