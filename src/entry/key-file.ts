/** Settings read from files on Node (a Worker gets the same values as secrets): the DKIM key, the publisher token. */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ConfigError } from '../config.js';

/** DKIM_PRIVATE_KEY_FILE: the key read from a file (Node only; a Worker takes DKIM_PRIVATE_KEY as a secret). */
export function withKeyFile(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  if (!env.DKIM_PRIVATE_KEY_FILE || env.DKIM_PRIVATE_KEY) return env;
  try {
    return { ...env, DKIM_PRIVATE_KEY: readFileSync(env.DKIM_PRIVATE_KEY_FILE, 'utf8') };
  } catch (error) {
    throw new ConfigError(
      `Invalid configuration:\n  DKIM_PRIVATE_KEY_FILE=${env.DKIM_PRIVATE_KEY_FILE}: cannot read it (${(error as Error).message}).`,
    );
  }
}

/** Where the publisher token made on the first start is kept (in DATA_DIR, readable by its owner only). */
export function tokenFilePath(env: NodeJS.ProcessEnv): string {
  return join(env.DATA_DIR || './data', 'publisher-token');
}

/**
 * Without PUBLISHER_TOKEN (and outside production, which requires one), the token is made once, written to
 * DATA_DIR/publisher-token (mode 0600), and read back at every later start: the dashboard's sessions and the
 * CLI keep working across restarts. `made` says whether this call wrote the file.
 */
export function withTokenFile(env: NodeJS.ProcessEnv): {
  env: NodeJS.ProcessEnv;
  tokenFile?: { path: string; made: boolean };
} {
  if (env.PUBLISHER_TOKEN || env.NODE_ENV === 'production') return { env };
  const path = tokenFilePath(env);
  const existing = readTokenFile(path);
  if (existing) return { env: { ...env, PUBLISHER_TOKEN: existing }, tokenFile: { path, made: false } };
  const token = randomBytes(24).toString('base64url');
  try {
    mkdirSync(dirname(path), { recursive: true });
    // 'wx': two processes starting at once (npm start and npm run worker) end up with the same token.
    writeFileSync(path, `${token}\n`, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    const raced = (error as NodeJS.ErrnoException).code === 'EEXIST' ? readTokenFile(path) : undefined;
    if (raced) return { env: { ...env, PUBLISHER_TOKEN: raced }, tokenFile: { path, made: false } };
    throw new ConfigError(
      `Invalid configuration:\n  PUBLISHER_TOKEN is not set, and the token file ${path} cannot be written (${(error as Error).message}). Set PUBLISHER_TOKEN, or DATA_DIR to a writable folder.`,
    );
  }
  return { env: { ...env, PUBLISHER_TOKEN: token }, tokenFile: { path, made: true } };
}

/** The token in the file, or undefined when there is no file (or an empty one). */
export function readTokenFile(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim() || undefined;
  } catch (error) {
    if (['ENOENT', 'ENOTDIR'].includes((error as NodeJS.ErrnoException).code ?? '')) return undefined;
    throw error;
  }
}

/** The CLI's token: PUBLISHER_TOKEN, else the file the service made in DATA_DIR (never made by the CLI). */
export function cliToken(env: NodeJS.ProcessEnv): string | undefined {
  return env.PUBLISHER_TOKEN || readTokenFile(tokenFilePath(env));
}
