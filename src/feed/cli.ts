import { parseArgs } from 'node:util';
import { parseConfig } from '../config.js';
import { describeError } from '../log.js';

const USAGE = `Usage:
  npm run cli -- feed send <entry-id-or-link> [--api URL]

Sends one entry of the watched feed (FEED_URL) that the watcher recorded without sending: one that was
there when the feed was first read, or dated before the newest entry seen. Sending it twice sends nothing more.
  --api URL   the running service (default: ONELETTER_API_URL, else PUBLIC_URL); the token comes from
              PUBLISHER_TOKEN`;

/** `npm run cli -- feed …`: the publisher's opt-in for feed entries, through the running service's API. */
export async function feedCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { api: { type: 'string' }, help: { type: 'boolean', short: 'h', default: false } },
  });
  const [action, entry] = positionals;
  if (values.help || action !== 'send' || !entry) {
    (values.help ? process.stdout : process.stderr).write(`${USAGE}\n`);
    return values.help ? 0 : 2;
  }
  if (!process.env.PUBLISHER_TOKEN) {
    process.stderr.write('Set PUBLISHER_TOKEN to the token the service was started with.\n');
    return 2;
  }
  const config = parseConfig(process.env);
  const base = (values.api ?? process.env.ONELETTER_API_URL ?? config.publicUrl).replace(/\/+$/, '');
  const res = await fetch(`${base}/api/feed/entries/${encodeURIComponent(entry)}/send`, {
    method: 'POST',
    headers: { authorization: `Bearer ${config.publisherToken}` },
  }).catch((error) => {
    throw new Error(
      `Could not reach ${base} (${describeError(error).error}). Is the service running? Use --api URL.`,
    );
  });
  const body = (await res.json().catch(() => ({}))) as {
    essay?: { slug: string; title: string };
    sendout?: { total: number };
    error?: { message?: string };
  };
  if (!res.ok || !body.essay) {
    process.stderr.write(`${res.status}: ${body.error?.message ?? 'unexpected answer'}\n`);
    return 1;
  }
  process.stdout.write(
    res.status === 202
      ? `Published "${body.essay.title}" as ${body.essay.slug}: ${body.sendout?.total ?? 0} confirmed subscribers get one letter each.\n`
      : `"${body.essay.title}" (${body.essay.slug}) was already published: nothing more is sent.\n`,
  );
  return 0;
}
