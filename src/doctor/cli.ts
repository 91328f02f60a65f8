import { parseArgs } from 'node:util';
import { describeError } from '../log.js';
import type { Verdict } from './check.js';
import type { DoctorReport } from './doctor.js';
import { runDoctor } from './doctor.js';

const USAGE = `Usage: npm run doctor [-- --records] [--dns IP]
   (or: npm run cli -- doctor …)

Checks what it can of the settings the service would start with (the same environment): configuration,
database, SMTP connection and login, and the sending domain's SPF, DKIM and DMARC records in DNS.
One line per check: ✓ ok, ! warning, ✗ failed, - skipped; each with what to fix. Exits 1 when a check failed.

Options:
  --records       print the DNS records to publish (also printed when one is missing)
  --dns IP        ask this DNS resolver (IP or IP:port) instead of the system's

Example:
  npm run doctor -- --records --dns 1.1.1.1`;

const MARK: Record<Verdict, string> = { ok: '✓', warn: '!', fail: '✗', skip: '-' };

/** `npm run doctor`: runs the checks and prints them; the checks themselves live in doctor.ts. */
export async function doctorCommand(args: string[]): Promise<number> {
  let values: { records: boolean; dns?: string[]; help: boolean };
  try {
    ({ values } = parseArgs({
      args,
      options: {
        records: { type: 'boolean', default: false },
        dns: { type: 'string', multiple: true },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n\n${USAGE}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  let report: DoctorReport;
  try {
    report = await runDoctor(process.env, { dnsServers: values.dns });
  } catch (error) {
    process.stderr.write(`The doctor could not finish: ${describeError(error).error}\n`);
    return 1;
  }
  process.stdout.write(formatReport(report, { allRecords: values.records }));
  return report.checks.some((c) => c.verdict === 'fail') ? 1 : 0;
}

/** The report as the terminal shows it: one line per check, a summary, then the records to publish. */
export function formatReport(report: DoctorReport, options: { allRecords?: boolean } = {}): string {
  const width = Math.max(...report.checks.map((c) => c.name.length));
  const lines = report.checks.map((check) => {
    const text = `${check.detail}${check.fix ? ` — ${check.fix}` : ''}`.replace(
      /\n/g,
      `\n${' '.repeat(width + 4)}`,
    );
    return `${MARK[check.verdict]} ${check.name.padEnd(width)}  ${text}`;
  });
  const count = (verdict: Verdict) => report.checks.filter((c) => c.verdict === verdict).length;
  lines.push(
    '',
    `${count('ok')} ok, ${count('warn')} ${count('warn') === 1 ? 'warning' : 'warnings'}, ${count('fail')} failed, ${count('skip')} skipped.`,
  );
  const records = report.records.filter((r) => options.allRecords || r.needed);
  if (records.length > 0) {
    lines.push('', 'DNS records to publish (type TXT; one value each, however long):');
    for (const record of records) {
      lines.push('', `  ${record.name}  TXT`, `    ${record.value}`, `    (${record.about})`);
    }
  }
  return `${lines.join('\n')}\n`;
}
