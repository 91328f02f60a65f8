/**
 * `npm run bench`: the two hot paths against their limits, each with its baselines from the same run.
 *   npm run bench                      send-out at 10k, 100k and 1M, under kills, POST /subscribe, tools
 *   npm run bench -- --quick           a few seconds: 2,000 subscribers, 1 s load runs (a smoke test);
 *                                      no kills unless --only=kills says so (2,000 subscribers, 2 kills)
 *   npm run bench -- --sizes=10000,100000 --only=sendout|kills|subscribe|altcha|publisher-tools|dashboard --duration=10
 *   (--only takes a list too: --only=sendout,kills)
 *   The dashboard (its pages and progress polls at N subscribers and 10 send-outs of N deliveries, against
 *   100 ms of server time) runs at 1M unless --sizes is given: --only=dashboard --sizes=10000 to try it.
 *   Publisher tools (import, export, list pages) run at 100k and 1M unless --sizes is given;
 *   --import-max=100000 caps the rows imported (the list and export still use N).
 *   --dispatchers=2 sends each send-out with that many dispatcher processes (default 1).
 *   --concurrency=10,32 sends each send-out at each SEND_CONCURRENCY (default 10, the service's default), the
 *   ceilings opening as many SMTP sessions; the values take turns within a round.
 *   --kills=10 --kill-size=20000 --kill-dispatchers=3: the send-out under kills, one dispatcher SIGKILLed
 *   every 0.5–1 s and replaced, K times, at that many subscribers (LEASE_SECONDS=2).
 *   POST /subscribe with ALTCHA off and on (--only=altcha): --altcha-requests=3000 a timed run (100 with
 *   --quick), --rounds=3 by default (1 with --quick), each round both ways in turn.
 *   --compare=<git ref> measures that version too (checked out and built beside this one), the send-out,
 *   the send-out under kills, POST /subscribe and POST /subscribe with ALTCHA off and on, alternating runs of the two (--rounds=2 by default; a
 *   send-out on a fresh database each run, POST /subscribe with both servers up, taking turns scenario by
 *   scenario).
 * Needs the local PostgreSQL server (TEST_DATABASE_URL, as the tests) and Postfix's smtp-sink/smtp-source.
 * Prints a table (Markdown) and writes it as JSON to bench/results/.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import type { AltchaResult, AltchaScenario } from './altcha.js';
import { ALTCHA_SCENARIO_LABELS, ALTCHA_SCENARIOS, meanTimed, measureAltcha } from './altcha.js';
import type { DashboardResult } from './dashboard.js';
import { measureDashboard, TARGET_MS } from './dashboard.js';
import type { KillsResult } from './kills.js';
import { LEASE_SECONDS, measureKills } from './kills.js';
import type { PublisherToolsResult } from './publisher-tools.js';
import { measurePublisherTools } from './publisher-tools.js';
import type { SendoutResult } from './sendout.js';
import { measureSendout } from './sendout.js';
import type { SubscribeResult } from './subscribe.js';
import { meanLoad, measureSubscribe, SCENARIO_LABELS, SCENARIOS } from './subscribe.js';
import { ROOT } from './support.js';
import type { ServiceVersion } from './versions.js';
import { checkout, workingTree } from './versions.js';

const args = process.argv.slice(2);
const flag = (name: string) => args.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
const quick = args.includes('--quick');
const only = flag('only')?.split(',');
const sizes = (flag('sizes') ?? (quick ? '2000' : '10000,100000,1000000')).split(',').map(Number);
const toolSizes = (flag('sizes') ?? (quick ? '2000' : '100000,1000000')).split(',').map(Number);
const dashboardSizes = (flag('sizes') ?? (quick ? '2000' : '1000000')).split(',').map(Number);
const importMax = Number(flag('import-max') ?? Number.POSITIVE_INFINITY);
/** Every section but the kills, which --quick leaves out unless --only names them (about 10 s even small). */
const runs = (name: string) => (only ? only.includes(name) : !(quick && name === 'kills'));
const durationSeconds = Number(flag('duration') ?? (quick ? 1 : 10));
const dispatchers = Math.max(1, Number(flag('dispatchers') ?? 1));
const concurrencies = (flag('concurrency') ?? '10').split(',').map((c) => Math.max(1, Number(c)));
const compareRef = flag('compare');
const rounds = Math.max(1, Number(flag('rounds') ?? (compareRef ? 2 : 1)));
const kills = Math.max(1, Number(flag('kills') ?? (quick ? 2 : 10)));
const killSize = Number(flag('kill-size') ?? (quick ? 2000 : 20_000));
const killDispatchers = Math.max(2, Number(flag('kill-dispatchers') ?? 3));
const altchaRequests = Math.max(1, Number(flag('altcha-requests') ?? (quick ? 100 : 3000)));
const altchaRounds = Math.max(1, Number(flag('rounds') ?? (quick ? 1 : 3)));
const log = (line: string) => process.stderr.write(`[bench] ${line}\n`);

/** Figures as the tables print them. */
const f = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const x = (a: number, b: number) => `${(a / b).toFixed(2)}×`;
const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / Math.max(1, values.length);

const machine = {
  cpu: cpus()[0]?.model ?? 'unknown',
  cores: cpus().length,
  memoryGiB: Math.round(totalmem() / 2 ** 30),
  node: process.version,
  platform: `${process.platform} ${process.arch}`,
};

// The service runs as `npm start` and `npm run worker` run it: compiled to dist/ first. With --compare, the
// other version beside it, taken away again whatever happens.
const current = await workingTree();
let baseline: (ServiceVersion & { remove(): Promise<void> }) | undefined;
let baselineLabel: string | undefined;
const removeBaseline = async () => {
  await baseline?.remove();
  baseline = undefined;
};
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void removeBaseline().finally(() => process.exit(130)));
}

const sendout: SendoutResult[] = [];
const killRuns: KillsResult[] = [];
let subscribe: SubscribeResult | undefined;
let altcha: AltchaResult | undefined;
const publisherTools: PublisherToolsResult[] = [];
const dashboard: DashboardResult[] = [];
let failure: unknown;
try {
  if (compareRef) {
    log(`checking out and building ${compareRef}`);
    baseline = await checkout(compareRef);
    baselineLabel = baseline.label;
  }
  /** Each round runs this version, then the other: a busy machine weighs on both alike. */
  const versions = baseline ? [current, baseline] : [current];
  if (runs('sendout')) {
    for (const n of sizes) {
      for (let round = 1; round <= rounds; round++) {
        for (const connections of concurrencies) {
          for (const service of versions) {
            const ceilingMessages = quick ? 2000 : 200_000;
            sendout.push(
              await measureSendout(n, { ceilingMessages, dispatchers, connections, service, round, log }),
            );
          }
        }
      }
    }
  }
  if (runs('kills')) {
    for (let round = 1; round <= rounds; round++) {
      for (const service of versions) {
        killRuns.push(
          await measureKills(killSize, { kills, dispatchers: killDispatchers, service, round, log }),
        );
      }
    }
  }
  // A failure in these still leaves the send-out figures printed and written.
  const failed = (error: unknown) => {
    failure = error;
    return undefined;
  };
  if (runs('subscribe')) {
    subscribe = await measureSubscribe({ durationSeconds, connections: 50, versions, rounds, log }).catch(
      failed,
    );
  }
  if (runs('altcha')) {
    altcha = await measureAltcha({
      requests: altchaRequests,
      connections: 50,
      versions,
      rounds: altchaRounds,
      log,
    }).catch(failed);
  }
} finally {
  await removeBaseline();
}

if (runs('publisher-tools')) {
  for (const n of toolSizes) {
    publisherTools.push(await measurePublisherTools(n, { listRuns: quick ? 20 : 200, importMax, log }));
  }
}

if (runs('dashboard')) {
  for (const n of dashboardSizes) dashboard.push(await measureDashboard(n, { runs: quick ? 10 : 30, log }));
}

const table = render();
process.stdout.write(`${table}\n`);
const dir = join(ROOT, 'bench', 'results');
await mkdir(dir, { recursive: true });
const at = new Date().toISOString();
const json = JSON.stringify(
  {
    at,
    quick,
    machine,
    compare: compareRef,
    rounds,
    sendout,
    kills: killRuns,
    subscribe,
    altcha,
    publisherTools,
    dashboard,
    table,
  },
  null,
  2,
);
const file = join(dir, `${at.replace(/[:.]/g, '-')}${quick ? '-quick' : ''}.json`);
await writeFile(file, json);
await writeFile(join(dir, quick ? 'latest-quick.json' : 'latest.json'), json);
process.stdout.write(`\nwritten to ${file}\n`);
if (failure) {
  process.stderr.write(`a POST /subscribe benchmark failed: ${(failure as Error).stack ?? failure}\n`);
  process.exit(1);
}
for (const r of sendout.filter((r) => !r.correct)) {
  process.stderr.write(`${r.service}: a send-out did not deliver exactly one letter to each subscriber\n`);
}
for (const r of killRuns.filter((r) => !r.correct)) {
  process.stderr.write(
    `${r.service}: under kills, a reader got two letters, or none without being unknown, or deliveries were left open\n`,
  );
}
if (sendout.some((r) => !r.correct) || killRuns.some((r) => !r.correct)) process.exit(1);
if (dashboard.some((r) => !r.correct)) {
  process.stderr.write('a dashboard page or poll did not answer 200 with the seeded figures\n');
  process.exit(1);
}
if (publisherTools.some((r) => !r.correct)) {
  process.stderr.write('a publisher-tools run did not import, export or list the rows it should have\n');
  process.exit(1);
}
process.exit(0);

function render(): string {
  const out: string[] = [];
  out.push(
    `Machine: ${machine.cores} × ${machine.cpu}, ${machine.memoryGiB} GiB, Node ${machine.node}, ${machine.platform}`,
  );
  /** With --compare, a column that says which version a row measured, and in which round. */
  const which = (r: { service: string; round: number }) => (compareRef ? ` ${r.service}, ${r.round} |` : '');
  const whichHeader = compareRef ? ' version, round |' : '';
  const whichAlign = compareRef ? '---|' : '';
  if (sendout.length) {
    const processes = dispatchers === 1 ? 'one dispatcher process' : `${dispatchers} dispatcher processes`;
    out.push('', `### Send-out (PostgreSQL, into smtp-sink, ${processes})`, '');
    out.push(
      `| subscribers |${whichHeader} connections | fan-out s | raw INSERT…SELECT s | ratio | end to end msg/s | SMTP ceiling msg/s | × ceiling | SMTP pool alone msg/s | × pool | dispatcher RSS rest / peak MiB${dispatchers === 1 ? '' : ' (largest)'} | sink messages / recipients |`,
      `|---:|${whichAlign}---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|`,
    );
    for (const r of sendout) {
      out.push(
        `| ${f(r.n)} |${which(r)} ${r.connections} | ${f(r.fanoutSeconds, 2)} | ${f(r.rawInsertSelectSeconds, 2)} | ${x(r.fanoutSeconds, r.rawInsertSelectSeconds)} | ${f(r.endToEndPerSecond)} (${f(r.endToEndSeconds, 1)} s) | ${f(r.smtpCeilingPerSecond)} | ${x(r.endToEndPerSecond, r.smtpCeilingPerSecond)} | ${f(r.transportCeilingPerSecond)} | ${x(r.endToEndPerSecond, r.transportCeilingPerSecond)} | ${f(r.dispatcherRestMiB)} / ${f(r.dispatcherPeakMiB)} | ${f(r.sinkMessages)} / ${f(r.sinkRecipients)} ${r.correct ? '✓' : '✗'} |`,
      );
    }
    out.push(
      '',
      'Where the CPU went while the letters went out (µs of CPU time per message, user + system, by process):',
      '',
      `| subscribers |${whichHeader} connections | dispatcher${dispatchers === 1 ? '' : 's'} | smtp-sink | PostgreSQL (all its processes) | sum | machine busy (all cores = 100 %) | WAL bytes per message |`,
      `|---:|${whichAlign}---:|---:|---:|---:|---:|---:|---:|`,
    );
    for (const r of sendout) {
      const c = r.cpuPerMessageUs;
      out.push(
        `| ${f(r.n)} |${which(r)} ${r.connections} | ${f(c.dispatcher)} | ${f(c.sink)} | ${f(c.postgres)} | ${f(c.dispatcher + c.sink + c.postgres)} | ${f(r.machineBusy * 100)} % | ${f(r.walBytesPerMessage)} |`,
      );
    }
    const mine = sendout.filter((r) => r.service === current.label);
    const first = mine[0];
    const last = mine[mine.length - 1];
    if (first && last && last.n !== first.n) {
      out.push(
        '',
        `Dispatcher peak RSS at ${f(last.n)} vs ${f(first.n)}: ${x(last.dispatcherPeakMiB, first.dispatcherPeakMiB)}`,
      );
    }
    if (concurrencies.length > 1) out.push(...renderConcurrencies());
    if (baselineLabel) out.push(...renderSendoutComparison(baselineLabel));
  }
  if (killRuns.length) out.push(...renderKills());
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
    if (baselineLabel) out.push(...renderSubscribeComparison(s, baselineLabel));
  }
  if (altcha) out.push(...renderAltcha(altcha));
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
  if (dashboard.length) out.push(...renderDashboard());
  return out.join('\n');
}

/** Each page's and poll's server time against the target, and the poll at N against the poll at 10. */
function renderDashboard(): string[] {
  const out = [
    '',
    `### Dashboard (PostgreSQL, through the app in memory, signed in; N subscribers, 10 finished send-outs of N deliveries each)`,
    '',
    `| subscribers | deliveries | seeded in s | page or poll | median ms | p95 ms | ≤ ${TARGET_MS} ms |`,
    '|---:|---:|---:|---|---:|---:|---|',
  ];
  for (const r of dashboard) {
    for (const fig of r.figures) {
      const ok = fig.timing.p95Ms <= TARGET_MS ? '✓' : '✗';
      out.push(
        `| ${f(r.n)} | ${f(r.deliveries)} | ${f(r.seedSeconds)} | ${fig.what} (\`${fig.path}\`) | ${f(fig.timing.medianMs, 2)} | ${f(fig.timing.p95Ms, 2)} | ${ok} |`,
      );
    }
  }
  out.push(
    '',
    '| subscribers | API poll at N, median ms | at 10 deliveries | N / 10 | the ledger counted per poll (before), raw SQL median ms | × the poll |',
    '|---:|---:|---:|---:|---:|---:|',
  );
  for (const r of dashboard) {
    out.push(
      `| ${f(r.n)} | ${f(r.pollAtN.medianMs, 2)} | ${f(r.pollAtTen.medianMs, 2)} | ${x(r.pollAtN.medianMs, r.pollAtTen.medianMs)} | ${f(r.ledgerCount.medianMs, 2)} | ${x(r.ledgerCount.medianMs, r.pollAtN.medianMs)} |`,
    );
  }
  return out;
}

/** Each round's pair of send-outs side by side, and the mean of the rounds: end to end, and to the ceiling. */
function renderSendoutComparison(other: string): string[] {
  const mine = current.label;
  const out = [
    '',
    `### Send-out, ${mine} against ${other} (alternating runs, each on a fresh database)`,
    '',
    `| subscribers | connections | round | ${mine} msg/s | ${other} msg/s | ${mine} / ${other} | SMTP ceiling msg/s (mean of the pair) | ${mine} × ceiling | ${other} × ceiling |`,
    '|---:|---:|---|---:|---:|---:|---:|---:|---:|',
  ];
  const row = (n: number, connections: number, round: string, a: SendoutResult[], b: SendoutResult[]) => {
    const rate = (runs: SendoutResult[]) => mean(runs.map((r) => r.endToEndPerSecond));
    const toCeiling = (runs: SendoutResult[]) =>
      mean(runs.map((r) => r.endToEndPerSecond / r.smtpCeilingPerSecond));
    const ceiling = mean([...a, ...b].map((r) => r.smtpCeilingPerSecond));
    out.push(
      `| ${f(n)} | ${connections} | ${round} | ${f(rate(a))} | ${f(rate(b))} | ${x(rate(a), rate(b))} | ${f(ceiling)} | ${toCeiling(a).toFixed(2)}× | ${toCeiling(b).toFixed(2)}× |`,
    );
  };
  for (const n of sizes) {
    for (const connections of concurrencies) {
      const of = (label: string, round?: number) =>
        sendout.filter(
          (r) =>
            r.n === n &&
            r.connections === connections &&
            r.service === label &&
            (round === undefined || r.round === round),
        );
      for (let round = 1; round <= rounds; round++)
        row(n, connections, String(round), of(mine, round), of(other, round));
      if (rounds > 1) row(n, connections, 'mean', of(mine), of(other));
    }
  }
  return out;
}

/** With several --concurrency values: this version's runs at each, side by side (mean of the rounds). */
function renderConcurrencies(): string[] {
  const out = [
    '',
    `### Send-out by SEND_CONCURRENCY (${current.label}, mean of ${rounds} round${rounds === 1 ? '' : 's'}; the ceilings with as many sessions)`,
    '',
    `| subscribers | connections | msg/s | × ${concurrencies[0]} connections | SMTP ceiling msg/s | × ceiling | SMTP pool alone msg/s | × pool | CPU µs per message (all processes) |`,
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const n of sizes) {
    const at = (connections: number | undefined) =>
      sendout.filter((r) => r.n === n && r.connections === connections && r.service === current.label);
    const rate = (runs: SendoutResult[]) => mean(runs.map((r) => r.endToEndPerSecond));
    const base = rate(at(concurrencies[0]));
    for (const connections of concurrencies) {
      const runs = at(connections);
      const cpu = mean(
        runs.map((r) => r.cpuPerMessageUs.dispatcher + r.cpuPerMessageUs.sink + r.cpuPerMessageUs.postgres),
      );
      out.push(
        `| ${f(n)} | ${connections} | ${f(rate(runs))} | ${x(rate(runs), base)} | ${f(mean(runs.map((r) => r.smtpCeilingPerSecond)))} | ${mean(runs.map((r) => r.endToEndPerSecond / r.smtpCeilingPerSecond)).toFixed(2)}× | ${f(mean(runs.map((r) => r.transportCeilingPerSecond)))} | ${mean(runs.map((r) => r.endToEndPerSecond / r.transportCeilingPerSecond)).toFixed(2)}× | ${f(cpu)} |`,
      );
    }
  }
  return out;
}

/** POST /subscribe, each scenario's runs of the two versions side by side by round, and their mean. */
function renderSubscribeComparison(s: SubscribeResult, other: string): string[] {
  const mine = current.label;
  const out = [
    '',
    `### POST /subscribe, ${mine} against ${other} (both up at once, taking turns scenario by scenario)`,
    '',
    `| address | round | ${mine} req/s | p50 / p99 ms | CPU µs/req | ${other} req/s | p50 / p99 ms | CPU µs/req | ${mine} / ${other} req/s |`,
    '|---|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const scenario of SCENARIOS) {
    const of = (label: string, round?: number) =>
      meanLoad(
        s.runs
          .filter((r) => r.scenario === scenario && r.service === label)
          .filter((r) => round === undefined || r.round === round)
          .map((r) => r.load),
      );
    const row = (round: string, a: ReturnType<typeof of>, b: ReturnType<typeof of>) =>
      out.push(
        `| ${SCENARIO_LABELS[scenario]} | ${round} | ${f(a.requestsPerSecond)} | ${f(a.p50Ms, 1)} / ${f(a.p99Ms, 1)} | ${f(a.cpuPerRequestUs.server)} | ${f(b.requestsPerSecond)} | ${f(b.p50Ms, 1)} / ${f(b.p99Ms, 1)} | ${f(b.cpuPerRequestUs.server)} | ${x(a.requestsPerSecond, b.requestsPerSecond)} |`,
      );
    for (let round = 1; round <= rounds; round++) row(String(round), of(mine, round), of(other, round));
    if (rounds > 1) row('mean', of(mine), of(other));
  }
  return out;
}

/** POST /subscribe with ALTCHA off and on, by round and their mean, each version's; then GET /altcha. */
function renderAltcha(a: AltchaResult): string[] {
  const labels = [...new Set(a.runs.map((r) => r.service))];
  const out = [
    '',
    `### POST /subscribe with ALTCHA off and on (PostgreSQL, ${a.connections} connections, ${f(a.requests)} requests a run, each on its own fresh database, taking turns)`,
    '',
    `ALTCHA on: every POST carries a payload of its own, fetched from GET /altcha and solved with altcha-lib's solver before the timed runs (${f(a.solveMsPerPayload, 1)} ms a payload, wall clock), at ALTCHA_MAX_COUNTER=${a.maxCounter} (counters of ${Math.floor(a.maxCounter / 4)}–${a.maxCounter}; the default, 200, asks for 50–200), PBKDF2/SHA-256 at cost 1000 as in production. The server's check derives one key whatever the counter: verifySolution in this process, ${f(a.verifyMs.low, 2)} ms a call at counters of 0–1, ${f(a.verifyMs.default, 2)} ms at 50–200.`,
    '',
    `|${labels.length > 1 ? ' version |' : ''} body | round | off req/s | median / p95 ms | CPU µs/req server / PostgreSQL | on req/s | median / p95 ms | CPU µs/req server / PostgreSQL | on / off req/s | on / off median | on − off server CPU µs/req |`,
    `|${labels.length > 1 ? '---|' : ''}---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|`,
  ];
  const cpu = (l: ReturnType<typeof meanTimed>) =>
    `${f(l.cpuPerRequestUs.server)} / ${f(l.cpuPerRequestUs.postgres)}`;
  const unexpected = (l: ReturnType<typeof meanTimed>) =>
    l.unexpected ? ` (${f(l.unexpected)} unexpected)` : '';
  /** The mean of a version's runs of a scenario, one way, in a round or all. */
  const meanOf = (label: string, scenario: AltchaScenario, mode: 'off' | 'on', round?: number) =>
    meanTimed(
      a.runs
        .filter((r) => r.service === label && r.scenario === scenario && r.mode === mode)
        .filter((r) => round === undefined || r.round === round)
        .map((r) => r.load),
    );
  for (const label of labels) {
    for (const scenario of ALTCHA_SCENARIOS) {
      const of = (mode: 'off' | 'on', round?: number) => meanOf(label, scenario, mode, round);
      const row = (round: string, off: ReturnType<typeof of>, on: ReturnType<typeof of>) =>
        out.push(
          `|${labels.length > 1 ? ` ${label} |` : ''} ${ALTCHA_SCENARIO_LABELS[scenario]} | ${round} | ${f(off.requestsPerSecond)}${unexpected(off)} | ${f(off.medianMs, 1)} / ${f(off.p95Ms, 1)} | ${cpu(off)} | ${f(on.requestsPerSecond)}${unexpected(on)} | ${f(on.medianMs, 1)} / ${f(on.p95Ms, 1)} | ${cpu(on)} | ${x(on.requestsPerSecond, off.requestsPerSecond)} | ${x(on.medianMs, off.medianMs)} | ${f(on.cpuPerRequestUs.server - off.cpuPerRequestUs.server)} |`,
        );
      for (let round = 1; round <= altchaRounds; round++)
        row(String(round), of('off', round), of('on', round));
      if (altchaRounds > 1) row('mean', of('off'), of('on'));
    }
  }
  const [mine, other] = labels;
  if (mine && other) {
    out.push(
      '',
      `ALTCHA on, ${mine} against ${other} (the mean of the rounds; PostgreSQL's CPU: all its processes):`,
      '',
      `| body | ${mine} req/s | ${other} req/s | ${mine} / ${other} | ${mine} median / p95 ms | ${other} median / p95 ms | ${mine} CPU µs/req server / PostgreSQL | ${other} CPU µs/req server / PostgreSQL |`,
      '|---|---:|---:|---:|---:|---:|---:|---:|',
    );
    for (const scenario of ALTCHA_SCENARIOS) {
      const [m, o] = [meanOf(mine, scenario, 'on'), meanOf(other, scenario, 'on')];
      out.push(
        `| ${ALTCHA_SCENARIO_LABELS[scenario]} | ${f(m.requestsPerSecond)} | ${f(o.requestsPerSecond)} | ${x(m.requestsPerSecond, o.requestsPerSecond)} | ${f(m.medianMs, 1)} / ${f(m.p95Ms, 1)} | ${f(o.medianMs, 1)} / ${f(o.p95Ms, 1)} | ${cpu(m)} | ${cpu(o)} |`,
      );
    }
  }
  out.push(
    '',
    `|${labels.length > 1 ? ' version |' : ''} GET /altcha (issuing a challenge) | round | req/s | median / p95 ms | CPU µs/req server |`,
    `|${labels.length > 1 ? '---|' : ''}---|---|---:|---:|---:|`,
  );
  for (const label of labels) {
    const challenges = a.runs.filter((r) => r.service === label && r.scenario === 'challenge');
    const row = (round: string, l: ReturnType<typeof meanTimed>) =>
      out.push(
        `|${labels.length > 1 ? ` ${label} |` : ''} ALTCHA on | ${round} | ${f(l.requestsPerSecond)}${unexpected(l)} | ${f(l.medianMs, 1)} / ${f(l.p95Ms, 1)} | ${f(l.cpuPerRequestUs.server)} |`,
      );
    for (const r of challenges) row(String(r.round), r.load);
    if (challenges.length > 1) row('mean', meanTimed(challenges.map((r) => r.load)));
  }
  return out;
}

/** The send-outs under kills: a row a run, and with several runs of a version, their sum. */
function renderKills(): string[] {
  const out = [
    '',
    `### Send-out under kills (PostgreSQL, ${f(killSize)} subscribers, ${killDispatchers} dispatcher processes, one SIGKILLed every 0.5–1 s and a new one started, LEASE_SECONDS=${LEASE_SECONDS}, SEND_CONCURRENCY as default)`,
    '',
    '| version | round | kills | sending at a kill, all dispatchers (mean) | unknown | per kill | unknown that never reached RCPT TO | per kill | of which at most, cut after MAIL FROM | readers with 2+ letters | no letter, not unknown | every delivery ended | dispatchers that exited on their own | end to end msg/s |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|',
  ];
  const row = (label: string, round: string, runs: KillsResult[]) => {
    const sum = (pick: (r: KillsResult) => number) => runs.reduce((a, r) => a + pick(r), 0);
    const killsMade = sum((r) => r.kills);
    const perKill = (n: number) => (killsMade ? f(n / killsMade, 1) : '–');
    const open = sum((r) => (r.ledger.pending ?? 0) + (r.ledger.claimed ?? 0) + (r.ledger.sending ?? 0));
    out.push(
      `| ${label} | ${round} | ${killsMade} | ${f(mean(runs.flatMap((r) => r.sendingAtKills)), 1)} | ${f(sum((r) => r.unknown))} | ${perKill(sum((r) => r.unknown))} | ${f(sum((r) => r.unknownNeverReached))} | ${perKill(sum((r) => r.unknownNeverReached))} | ${f(sum((r) => r.cutBeforeRecipient))} | ${f(sum((r) => r.duplicates))} | ${f(sum((r) => r.lost))} | ${runs.every((r) => r.ended) ? '✓' : `✗ ${f(open)} open`} | ${sum((r) => r.exitedOnTheirOwn.length)} | ${f(mean(runs.map((r) => r.perSecond)))} |`,
    );
  };
  for (const r of killRuns) row(r.service, String(r.round), [r]);
  const labels = [...new Set(killRuns.map((r) => r.service))];
  if (rounds > 1)
    for (const label of labels)
      row(
        label,
        'all',
        killRuns.filter((r) => r.service === label),
      );
  if (baselineLabel) {
    const rate = (label: string) => mean(killRuns.filter((r) => r.service === label).map((r) => r.perSecond));
    out.push(
      '',
      `End to end under kills, ${current.label} / ${baselineLabel}: ${x(rate(current.label), rate(baselineLabel))} (mean msg/s of each version's runs)`,
    );
  }
  return out;
}
