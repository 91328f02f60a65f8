import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureTool } from '../../scripts/tool.mjs';
import { freePort } from './process.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface WranglerDev {
  /** `http://127.0.0.1:<port>` */
  base: string;
  /** Ends wrangler, workerd and esbuild, and removes the state folder. */
  stop(): Promise<void>;
}

export interface WranglerOptions {
  /** The Worker's entry; wrangler.toml's when unset. */
  script?: string;
  /** `--var`s, as an operator sets them in wrangler.toml or the dashboard; given the Worker's address. */
  vars?: (base: string) => Record<string, string>;
  /** More arguments for `wrangler dev` (e.g. `--test-scheduled`). */
  args?: string[];
  /** Resolves true once the Worker answers; called every half second for up to 90 s. */
  ready(base: string): Promise<boolean>;
}

/** A real workerd through `wrangler dev` on a free port, in its own process group so all of it ends. */
export async function startWrangler(options: WranglerOptions): Promise<WranglerDev> {
  // Not in node_modules: installed on first use in tools/workers (scripts/tool.mjs), as `npm run deploy` does.
  const wranglerJs = join(ensureTool('workers'), 'node_modules', 'wrangler', 'bin', 'wrangler.js');
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const stateDir = await mkdtemp(join(tmpdir(), 'oneletter-wrangler-'));
  const args = [wranglerJs, 'dev', ...(options.script ? [options.script] : [])];
  args.push('--ip', '127.0.0.1', '--port', String(port), ...(options.args ?? []));
  args.push('--persist-to', stateDir, '--inspector-port', String(await freePort()));
  for (const [key, value] of Object.entries(options.vars?.(base) ?? {}))
    args.push('--var', `${key}:${value}`);
  // Its own process group: wrangler starts workerd and esbuild, and all of them must go at the end.
  const wrangler: ChildProcess = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, CI: 'true', WRANGLER_SEND_METRICS: 'false' },
    detached: true,
  });
  let output = '';
  wrangler.stdout?.on('data', (chunk) => {
    output += chunk;
  });
  wrangler.stderr?.on('data', (chunk) => {
    output += chunk;
  });

  const stop = async () => {
    const group = wrangler.pid;
    if (group) {
      const kill = (signal: NodeJS.Signals) => {
        try {
          process.kill(-group, signal);
        } catch {}
      };
      kill('SIGTERM');
      await new Promise((resolve) => setTimeout(resolve, 1000));
      kill('SIGKILL');
    }
    await rm(stateDir, { recursive: true, force: true });
  };

  const started = Date.now();
  for (;;) {
    if (await options.ready(base).catch(() => false)) return { base, stop };
    if (Date.now() - started > 90_000 || wrangler.exitCode !== null) {
      await stop();
      throw new Error(`wrangler dev did not start:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}
