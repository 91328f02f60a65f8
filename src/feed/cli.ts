import { parseArgs } from 'node:util';
import { API_OPTION, CommandError, extraWords, publisherApi, subscribersGet } from '../entry/api-client.js';

const USAGE = `Usage: npm run cli -- feed send <entry> [--api URL]

Sends one entry of the watched feed (FEED_URL) that the watcher recorded without sending: one that was
there when the feed was first read, or dated before the newest entry seen. Sending it twice sends nothing more.

Arguments and options:
  <entry>         the entry's id (guid) or its link, as the feed has it
${API_OPTION}

Example:
  npm run cli -- feed send https://example.org/essays/on-walking`;

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
  const extra = extraWords(positionals, 2);
  if (extra) {
    process.stderr.write(`${extra}\n\n${USAGE}\n`);
    return 2;
  }
  let res: Response;
  try {
    res = await publisherApi(values.api).call(`/api/feed/entries/${encodeURIComponent(entry)}/send`, {
      method: 'POST',
    });
  } catch (error) {
    if (!(error instanceof CommandError)) throw error;
    process.stderr.write(`${error.message}\n`);
    return error.code;
  }
  const body = (await res.json()) as { essay: { slug: string; title: string }; sendout?: { total: number } };
  process.stdout.write(
    res.status === 202
      ? `Published "${body.essay.title}" as ${body.essay.slug}: ${subscribersGet(body.sendout?.total ?? 0)}\n`
      : `"${body.essay.title}" (${body.essay.slug}) was already published: nothing more is sent.\n`,
  );
  return 0;
}
