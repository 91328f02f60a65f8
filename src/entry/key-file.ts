/** Settings read from files on Node (a Worker gets the same values as secrets). */
import { readFileSync } from 'node:fs';
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
