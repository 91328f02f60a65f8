/**
 * `npm run bench`: the two hot paths against their limits, each with its baselines from the same run.
 *   npm run bench                      send-out at 10k, 100k and 1M subscribers, then POST /subscribe
 *   npm run bench -- --quick           a few seconds: 2,000 subscribers, 1 s load runs (a smoke test)
 *   npm run bench -- --sizes=10000,100000 --only=sendout|subscribe|publisher-tools --duration=10
 *   Publisher tools (import, export, list pages) run at 100k and 1M unless --sizes is given;
 *   --import-max=100000 caps the rows imported (the list and export still use N).
 *   --dispatchers=2 sends each send-out with that many dispatcher processes (default 1).
 * Needs the local PostgreSQL server (TEST_DATABASE_URL, as the tests) and Postfix's smtp-sink/smtp-source.
 * Prints a table (Markdown) and writes it as JSON to bench/results/.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import type { PublisherToolsResult } from './publisher-tools.js';
import { measurePublisherTools } from './publisher-tools.js';
import type { SendoutResult } from './sendout.js';
import { measureSendout } from './sendout.js';
import type { SubscribeResult } from './subscribe.js';
import { measureSubscribe, SCENARIO_LABELS, SCENARIOS } from './subscribe.js';
import { buildService, ROOT } from './support.js';

const args = process.argv.slice(2);
const flag = (name: string) => args.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
const quick = args.includes('--quick');
const only = flag('only');
const sizes = (flag('sizes') ?? (quick ? '2000' : '10000,100000,1000000')).split(',').map(Number);
const toolSizes = (flag('sizes') ?? (quick ? '2000' : '100000,1000000')).split(',').map(Number);
const importMax = Number(flag('import-max') ?? Number.POSITIVE_INFINITY);
const runs = (name: string) => !only || only === name;
const durationSeconds = Number(flag('duration') ?? (quick ? 1 : 10));
const dispatchers = Math.max(1, Number(flag('dispatchers') ?? 1));
const log = (line: string) => process.stderr.write(`[bench] ${line}\n`);

const machine = {
  cpu: cpus()[0]?.model ?? 'unknown',
  cores: cpus().length,
  memoryGiB: Math.round(totalmem() / 2 ** 30),
  node: process.version,
  platform: `${process.platform} ${process.arch}`,
};

// The service runs as `npm start` and `npm run worker` run it: compiled to dist/ first.
await buildService();

const sendout: SendoutResult[] = [];
if (runs('sendout')) {
  for (const n of sizes) {
    sendout.push(await measureSendout(n, { ceilingMessages: quick ? 2000 : 200_000, dispatchers, log }));
  }
}
let subscribe: SubscribeResult | undefined;
let failure: unknown;
if (runs('subscribe')) {
  // A failure here still leaves the send-out figures printed and written.
  subscribe = await measureSubscribe({ durationSeconds, connections: 50, log }).catch((error) => {
    failure = error;
    return undefined;
  });
}

const publisherTools: PublisherToolsResult[] = [];
if (runs('publisher-tools')) {
  for (const n of toolSizes) {
    publisherTools.push(await measurePublisherTools(n, { listRuns: quick ? 20 : 200, importMax, log }));
  }
}

const table = render();
process.stdout.write(`${table}\n`);
const dir = join(ROOT, 'bench', 'results');
await mkdir(dir, { recursive: true });
const at = new Date().toISOString();
const json = JSON.stringify({ at, quick, machine, sendout, subscribe, publisherTools, table }, null, 2);
const file = join(dir, `${at.replace(/[:.]/g, '-')}${quick ? '-quick' : ''}.json`);
await writeFile(file, json);
await writeFile(join(dir, quick ? 'latest-quick.json' : 'latest.json'), json);
process.stdout.write(`\nwritten to ${file}\n`);
if (failure) {
  process.stderr.write(`the POST /subscribe benchmark failed: ${(failure as Error).stack ?? failure}\n`);
  process.exit(1);
}
if (sendout.some((r) => !r.correct)) {
  process.stderr.write('a send-out did not deliver exactly one letter to each subscriber\n');
  process.exit(1);
}
if (publisherTools.some((r) => !r.correct)) {
  process.stderr.write('a publisher-tools run did not import, export or list the rows it should have\n');
  process.exit(1);
}
process.exit(0);

function render(): string {
  const out: string[] = [];
  const f = (n: number, digits = 0) =>
    n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
  const x = (a: number, b: number) => `${(a / b).toFixed(2)}×`;
  out.push(
    `Machine: ${machine.cores} × ${machine.cpu}, ${machine.memoryGiB} GiB, Node ${machine.node}, ${machine.platform}`,
  );
  if (sendout.length) {
    const processes = dispatchers === 1 ? 'one dispatcher process' : `${dispatchers} dispatcher processes`;
    out.push('', `### Send-out (PostgreSQL, into smtp-sink, ${processes})`, '');
    out.push(
      `| subscribers | fan-out s | raw INSERT…SELECT s | ratio | end to end msg/s | SMTP ceiling msg/s | × ceiling | nodemailer raw pool msg/s | × pool | dispatcher RSS rest / peak MiB${dispatchers === 1 ? '' : ' (largest)'} | sink messages / recipients |`,
      '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    );
    for (const r of sendout) {
      out.push(
        `| ${f(r.n)} | ${f(r.fanoutSeconds, 2)} | ${f(r.rawInsertSelectSeconds, 2)} | ${x(r.fanoutSeconds, r.rawInsertSelectSeconds)} | ${f(r.endToEndPerSecond)} (${f(r.endToEndSeconds, 1)} s) | ${f(r.smtpCeilingPerSecond)} | ${x(r.endToEndPerSecond, r.smtpCeilingPerSecond)} | ${f(r.transportCeilingPerSecond)} | ${x(r.endToEndPerSecond, r.transportCeilingPerSecond)} | ${f(r.dispatcherRestMiB)} / ${f(r.dispatcherPeakMiB)} | ${f(r.sinkMessages)} / ${f(r.sinkRecipients)} ${r.correct ? '✓' : '✗'} |`,
      );
    }
    out.push(
      '',
      'Where the CPU went while the letters went out (µs of CPU time per message, user + system, by process):',
      '',
      `| subscribers | dispatcher${dispatchers === 1 ? '' : 's'} | smtp-sink | PostgreSQL (all its processes) | sum | machine busy (all cores = 100 %) | WAL bytes per message |`,
      '|---:|---:|---:|---:|---:|---:|---:|',
    );
    for (const r of sendout) {
      const c = r.cpuPerMessageUs;
      out.push(
        `| ${f(r.n)} | ${f(c.dispatcher)} | ${f(c.sink)} | ${f(c.postgres)} | ${f(c.dispatcher + c.sink + c.postgres)} | ${f(r.machineBusy * 100)} % | ${f(r.walBytesPerMessage)} |`,
      );
    }
    const first = sendout[0];
    const last = sendout[sendout.length - 1];
    if (first && last && last !== first) {
      out.push(
        '',
        `Dispatcher peak RSS at ${f(last.n)} vs ${f(first.n)}: ${x(last.dispatcherPeakMiB, first.dispatcherPeakMiB)}`,
      );
    }
  }
  if (subscribe) {
    const s = subscribe;
    out.push(
      '',
      `### POST /subscribe (PostgreSQL, ${s.connections} connections, ${s.durationSeconds} s each)`,
      '',
    );
    out.push(
      '| address | service req/s | p50 / p99 ms | node:http + postgres.js req/s | p50 / p99 ms | × baseline | unexpected answers |',
      '|---|---:|---:|---:|---:|---:|---:|',
    );
    for (const scenario of SCENARIOS) {
      const a = s.service[scenario];
      const b = s.raw[scenario];
      out.push(
        `| ${SCENARIO_LABELS[scenario]} | ${f(a.requestsPerSecond)} | ${a.p50Ms} / ${a.p99Ms} | ${f(b.requestsPerSecond)} | ${b.p50Ms} / ${b.p99Ms} | ${x(a.requestsPerSecond, b.requestsPerSecond)} | ${a.unexpected} / ${b.unexpected} |`,
      );
    }
    out.push(
      `| Hono hello-world | | | ${f(s.hono.requestsPerSecond)} | ${s.hono.p50Ms} / ${s.hono.p99Ms} | | ${s.hono.unexpected} |`,
    );
    out.push(
      '',
      'CPU time per request (µs, user + system): the server process, and PostgreSQL (all its processes):',
      '',
      '| address | service | its PostgreSQL | node:http + postgres.js | its PostgreSQL |',
      '|---|---:|---:|---:|---:|',
    );
    for (const scenario of SCENARIOS) {
      const a = s.service[scenario].cpuPerRequestUs;
      const b = s.raw[scenario].cpuPerRequestUs;
      out.push(
        `| ${SCENARIO_LABELS[scenario]} | ${f(a.server)} | ${f(a.postgres)} | ${f(b.server)} | ${f(b.postgres)} |`,
      );
    }
    out.push(`| Hono hello-world | | | ${f(s.hono.cpuPerRequestUs.server)} | |`);
    const m = s.serviceMemory;
    out.push(
      '',
      `Service memory: ${f(m.restMiB)} MiB RSS at rest, ${f(m.afterMiB)} MiB after the runs (peak ${f(m.peakMiB)} MiB)`,
    );
  }
  if (publisherTools.length) {
    out.push('', '### Publisher tools (PostgreSQL, through the app in memory)', '');
    out.push(
      '| subscribers | import s (rows) | rows/s | raw json_to_recordset s | × raw | export s | rows/s | raw cursor read s | × raw | RSS during export start / peak MiB |',
      '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    );
    for (const r of publisherTools) {
      out.push(
        `| ${f(r.n)} | ${f(r.importSeconds, 2)} (${f(r.importRows)}) | ${f(r.importRows / r.importSeconds)} | ${f(r.rawImportSeconds, 2)} | ${x(r.importSeconds, r.rawImportSeconds)} | ${f(r.exportSeconds, 2)} | ${f(r.exportRows / r.exportSeconds)} | ${f(r.rawExportSeconds, 2)} | ${x(r.exportSeconds, r.rawExportSeconds)} | ${f(r.exportRssStartMiB)} / ${f(r.exportRssPeakMiB)} ${r.correct ? '✓' : '✗'} |`,
      );
    }
    out.push(
      '',
      '| subscribers | list page (50 rows) | service median / p99 ms | raw SQL median / p99 ms | × raw (median) |',
      '|---:|---|---:|---:|---:|',
    );
    for (const r of publisherTools) {
      for (const l of r.list) {
        out.push(
          `| ${f(r.n)} | ${l.page} | ${f(l.service.medianMs, 2)} / ${f(l.service.p99Ms, 2)} | ${f(l.raw.medianMs, 2)} / ${f(l.raw.p99Ms, 2)} | ${x(l.service.medianMs, l.raw.medianMs)} |`,
        );
      }
    }
  }
  return out.join('\n');
}
