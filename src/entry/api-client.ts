import { parseConfig } from '../config.js';
import { describeError } from '../log.js';
import { cliToken } from './key-file.js';

/** The CLI's way to the running service's API, with the publisher token. */

/** "N confirmed subscribers get one letter each.", in the singular for one. */
export function subscribersGet(n: number): string {
  return n === 1
    ? '1 confirmed subscriber gets one letter.'
    : `${n} confirmed subscribers get one letter each.`;
}

/** A failure the CLI prints as it is (one line), exiting with `code`. */
export class CommandError extends Error {
  constructor(
    message: string,
    readonly code = 1,
  ) {
    super(message);
  }
}

/**
 * The words after the ones a command takes, said back: most often the rest of a value of several words left
 * unquoted (`--title On running` gives the title "On" and a word "running"). A command refuses them rather
 * than publish or erase with part of what was meant.
 */
export function extraWords(positionals: string[], takes: number): string | undefined {
  const extra = positionals.slice(takes);
  if (extra.length === 0) return undefined;
  return `Unexpected ${extra.map((word) => JSON.stringify(word.slice(0, 100))).join(' ')}: a value of several words goes in quotes (--title "On walking").`;
}

export interface Api {
  base: string;
  /** The answer when it is 2xx; anything else throws a CommandError that says what went wrong. */
  call(path: string, init?: RequestInit & { duplex?: 'half' }): Promise<Response>;
}

/** The `--api` option as every command that goes through the running service explains it. */
export const API_OPTION = `  --api URL       the running service (default: ONELETTER_API_URL, else PUBLIC_URL); the token comes
                  from PUBLISHER_TOKEN, else DATA_DIR/publisher-token (./data)`;

export const MISSING_TOKEN =
  'No publisher token: set PUBLISHER_TOKEN to the token the service was started with, or run this from the ' +
  'folder the service keeps its data in (it reads DATA_DIR/publisher-token, ./data by default).';

/** The service at `--api` (else ONELETTER_API_URL, else PUBLIC_URL). */
export function publisherApi(apiFlag: string | undefined): Api {
  const token = cliToken(process.env);
  if (!token) throw new CommandError(MISSING_TOKEN, 2);
  const config = parseConfig({ ...process.env, PUBLISHER_TOKEN: token });
  const base = (apiFlag ?? process.env.ONELETTER_API_URL ?? config.publicUrl).replace(/\/+$/, '');
  return {
    base,
    async call(path, init = {}) {
      const res = await fetch(`${base}${path}`, {
        ...init,
        headers: { authorization: `Bearer ${token}`, ...(init.headers ?? {}) },
      }).catch((error) => {
        throw new CommandError(
          `Could not reach ${base} (${describeError(error).error}). Is the service running? Use --api URL.`,
        );
      });
      if (res.status === 401) {
        throw new CommandError(
          `The service at ${base} refused the publisher token (401): it is not the token the service was ` +
            'started with. Use the one its start message shows (or PUBLISHER_TOKEN as set there).',
        );
      }
      if (!res.ok) {
        const body = (await res.json().catch(() => ({}))) as { error?: { message?: string } };
        throw new CommandError(`${res.status}: ${body.error?.message ?? res.statusText}`);
      }
      return res;
    },
  };
}
