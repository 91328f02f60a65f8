/**
 * POST /subscribe with ALTCHA off and on (issue 26): the service started the same way twice in one run, once
 * with ALTCHA_HMAC_KEY set, each on a fresh database, both up at once and taking turns (the first to go
 * changes every round), so a busy machine weighs on both alike. What is measured with ALTCHA on is the
 * server's cost: the challenges are fetched from GET /altcha and solved with altcha-lib's solver before the
 * timed part (the reader's browser does both), and each timed POST carries a payload of its own (a reused
 * one is refused). GET /altcha, issuing a challenge, is timed on its own.
 *
 * The payloads are solved at a low difficulty (ALTCHA_MAX_COUNTER, below): solving at the default would
 * take the bench minutes. The server's cost does not depend on it: altcha-lib's verifySolution checks the
 * signature (one HMAC) and derives the one key of the solution's counter (PBKDF2 at the challenge's cost,
 * 1,000 iterations either way), and createChallenge derives the one key of the counter it picks. The solver
 * derives a key for every counter from 0 up. `verifyCost` below measures that claim in process.
 * With --compare, each version is started both ways.
 */
import { createChallenge, solveChallenge, verifySolution } from 'altcha-lib';
import { deriveKey } from 'altcha-lib/algorithms/web/pbkdf2';
import type { Challenge } from 'altcha-lib/types';
import autocannon from 'autocannon';
import type { Running } from './subscribe.js';
import { subscribeEnv, withServices } from './subscribe.js';
import { cpuSecondsOf, postgresCpuSeconds, sleep } from './support.js';
import type { ServiceVersion } from './versions.js';

/** The difficulty the payloads are solved at: counters of 0–1 (the default, 200, asks for 50–200). */
export const BENCH_MAX_COUNTER = 1;
const KEY = 'bench-altcha-key-0123456789abcdef0123456789';

/** `json`: a new address posted as JSON (answered 202); `form`: as a plain HTML form (answered 303). */
export type AltchaScenario = 'json' | 'form';
export const ALTCHA_SCENARIOS: AltchaScenario[] = ['json', 'form'];
/** How the table names each scenario. */
export const ALTCHA_SCENARIO_LABELS: Record<AltchaScenario, string> = { json: 'JSON', form: 'form post' };
export type Mode = 'off' | 'on';

export interface TimedLoad {
  requestsPerSecond: number;
  medianMs: number;
  p95Ms: number;
  /** Answers other than the one expected, and socket errors. */
  unexpected: number;
  total: number;
  /** CPU time per request (user + system), in microseconds: the server process, and PostgreSQL's processes. */
  cpuPerRequestUs: { server: number; postgres: number };
}

export interface AltchaRun {
  service: string;
  mode: Mode;
  round: number;
  /** `challenge`: GET /altcha, on the service with ALTCHA on. */
  scenario: AltchaScenario | 'challenge';
  load: TimedLoad;
}

export interface AltchaResult {
  connections: number;
  /** Requests in each timed run. */
  requests: number;
  maxCounter: number;
  /** Solving before the timed part, wall-clock ms a payload (GET /altcha and altcha-lib's solver). */
  solveMsPerPayload: number;
  /** verifySolution in this process, ms a call: solutions of counters 0–1 and of 50–200 (the default). */
  verifyMs: { low: number; default: number };
  runs: AltchaRun[];
}

export interface AltchaOptions {
  requests: number;
  connections: number;
  /** This working tree first, then the version it is compared with, if any. */
  versions: Pick<ServiceVersion, 'label' | 'root'>[];
  rounds: number;
  log: (line: string) => void;
}

type Service = Running & { version: string; mode: Mode };

let sequence = 0;

/** Each request's body: a new address, and with ALTCHA on a payload of its own. */
function bodies(scenario: AltchaScenario, payloads: string[] | undefined): () => string {
  const run = `${Date.now().toString(36)}-${sequence++}`;
  let i = 0;
  return () => {
    const email = `altcha-${run}-${i}@example.org`;
    // Past the last payload (autocannon never sends more than asked), a missing one: refused, counted.
    const altcha = payloads ? (payloads[i] ?? '') : undefined;
    i++;
    if (scenario === 'form') {
      const form = new URLSearchParams({ email });
      if (altcha !== undefined) form.set('altcha', altcha);
      return form.toString();
    }
    return JSON.stringify(altcha === undefined ? { email } : { email, altcha });
  };
}

/** `amount` requests on `connections` connections; the latencies are each response's, as autocannon timed it. */
async function timed(
  service: Service,
  amount: number,
  connections: number,
  request: { path: string; method: 'GET' | 'POST'; form?: boolean; body?: () => string; expected: number },
): Promise<TimedLoad> {
  const latencies: number[] = [];
  let unexpected = 0;
  const cpuBefore = await Promise.all([cpuSecondsOf(service.child.pid), postgresCpuSeconds()]);
  const started = performance.now();
  // Up to the last answer: autocannon only notices it is done on its next one-second tick.
  let finished = started;
  const result = await autocannon({
    url: `http://127.0.0.1:${service.port}${request.path}`,
    connections: Math.min(connections, amount),
    amount,
    method: request.method,
    headers: request.form
      ? { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html' }
      : { 'content-type': 'application/json', accept: 'application/json' },
    requests: [{ setupRequest: (req) => (request.body ? { ...req, body: request.body() } : req) }],
    setupClient: (client) => {
      client.on('response', (status: number, _bytes: number, ms: number) => {
        latencies.push(ms);
        finished = performance.now();
        if (status !== request.expected) unexpected++;
      });
    },
  });
  const seconds = (finished - started) / 1000;
  const cpuAfter = await Promise.all([cpuSecondsOf(service.child.pid), postgresCpuSeconds()]);
  const total = result.requests.total;
  const perRequestUs = (i: 0 | 1) => ((cpuAfter[i] - cpuBefore[i]) / Math.max(1, total)) * 1e6;
  latencies.sort((a, b) => a - b);
  const quantile = (q: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
  return {
    requestsPerSecond: total / seconds,
    medianMs: quantile(0.5),
    p95Ms: quantile(0.95),
    unexpected: unexpected + result.errors + result.timeouts,
    total,
    cpuPerRequestUs: { server: perRequestUs(0), postgres: perRequestUs(1) },
  };
}

/** POST /subscribe, with a payload of `payloads` each when given (ALTCHA on). */
function post(service: Service, scenario: AltchaScenario, options: AltchaOptions, payloads?: string[]) {
  return timed(service, options.requests, options.connections, {
    path: '/subscribe',
    method: 'POST',
    form: scenario === 'form',
    body: bodies(scenario, payloads),
    expected: scenario === 'form' ? 303 : 202,
  });
}

/** Runs `work` on each item, `width` at a time. */
async function pool<T, R>(items: T[], width: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await work(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: width }, worker));
  return out;
}

/** The widget's `altcha` field for a challenge: base64 of JSON {challenge, solution}. */
async function solve(challenge: Challenge): Promise<string> {
  const solution = await solveChallenge({ challenge, deriveKey });
  if (!solution) throw new Error('altcha-lib found no solution');
  return btoa(JSON.stringify({ challenge, solution }));
}

/** `count` challenges from the service's GET /altcha, solved (PBKDF2 runs on libuv's threads: 4 at once). */
async function payloadsFrom(service: Service, count: number): Promise<string[]> {
  return pool(Array.from({ length: count }), 4, async () => {
    const res = await fetch(`http://127.0.0.1:${service.port}/altcha`);
    if (res.status !== 200) throw new Error(`GET /altcha answered ${res.status}`);
    return solve((await res.json()) as Challenge);
  });
}

/**
 * verifySolution's time in this process, the median of a call, at counters of 0–1 and of 50–200 (the
 * default's): the server's cost either way. Taking turns, so a busy moment of the machine weighs on both.
 */
async function verifyCost(): Promise<AltchaResult['verifyMs']> {
  const samples = 40;
  const solved = (counter: number) =>
    createChallenge({
      algorithm: 'PBKDF2/SHA-256',
      cost: 1000,
      counter,
      deriveKey,
      hmacSignatureSecret: KEY,
    }).then(async (challenge) => ({ challenge, solution: await solveChallenge({ challenge, deriveKey }) }));
  const pairs = await Promise.all(
    Array.from(
      { length: samples },
      async (_, i) =>
        [await solved(i % 2), await solved(50 + Math.round((150 * i) / (samples - 1)))] as const,
    ),
  );
  const times: [number[], number[]] = [[], []];
  // Twice through, the first pays for compiling; which of a pair goes first changes from pair to pair.
  for (const pass of [0, 1]) {
    for (const [i, pair] of pairs.entries()) {
      for (const k of (i % 2 ? [1, 0] : [0, 1]) as (0 | 1)[]) {
        const { challenge, solution } = pair[k];
        if (!solution) throw new Error('altcha-lib found no solution');
        const started = performance.now();
        const { verified } = await verifySolution({
          challenge,
          solution,
          deriveKey,
          hmacSignatureSecret: KEY,
        });
        if (!verified) throw new Error('a solution did not verify');
        if (pass === 1) times[k].push(performance.now() - started);
      }
    }
  }
  const median = (values: number[]) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;
  return { low: median(times[0]), default: median(times[1]) };
}

export async function measureAltcha(options: AltchaOptions): Promise<AltchaResult> {
  const { log, rounds, requests } = options;
  log('altcha: verifySolution in process, counters of 0–1 against 50–200');
  const verifyMs = await verifyCost();
  const on = {
    ALTCHA_HMAC_KEY: KEY,
    ALTCHA_MAX_COUNTER: String(BENCH_MAX_COUNTER),
    // Every payload is solved before the first timed run: none may expire before its turn.
    ALTCHA_EXPIRES_SECONDS: '7200',
  };
  const started = options.versions.flatMap((v) => [
    { ...v, label: `${v.label}, off`, mode: 'off' as const },
    { ...v, label: `${v.label}, on`, mode: 'on' as const, env: on },
  ]);
  const runs: AltchaRun[] = [];
  let solveMs = 0;
  let solved = 0;
  await withServices(started, subscribeEnv, async (running) => {
    const services: Service[] = running.map((r, i) => ({
      ...r,
      version: options.versions[Math.floor(i / 2)]?.label ?? '',
      mode: started[i]?.mode ?? 'off',
    }));
    // Half a run to warm each server up, then a run of each scenario in each round.
    const warm = Math.max(1, Math.round(requests / 2));
    const payloads = new Map<Service, string[]>();
    for (const service of services.filter((s) => s.mode === 'on')) {
      const count = warm + requests * ALTCHA_SCENARIOS.length * rounds;
      log(`altcha: ${service.label}, solving ${count} challenges from GET /altcha`);
      const before = performance.now();
      payloads.set(service, await payloadsFrom(service, count));
      solveMs += performance.now() - before;
      solved += count;
    }
    /** The next `n` payloads of a service with ALTCHA on; none with it off. */
    const take = (service: Service, n: number) => payloads.get(service)?.splice(0, n);
    await sleep(300);
    for (const service of services) {
      log(`altcha: ${service.label}, warming up`);
      await post(service, 'json', { ...options, requests: warm }, take(service, warm));
    }
    for (let round = 1; round <= rounds; round++) {
      const turn = round % 2 === 1 ? services : [...services].reverse();
      for (const scenario of ALTCHA_SCENARIOS) {
        for (const service of turn) {
          log(`altcha: ${service.label}, ${scenario}, round ${round}`);
          const load = await post(service, scenario, options, take(service, requests));
          runs.push({ service: service.version, mode: service.mode, round, scenario, load });
        }
      }
      for (const service of turn.filter((s) => s.mode === 'on')) {
        log(`altcha: ${service.label}, GET /altcha, round ${round}`);
        const load = await timed(service, requests, options.connections, {
          path: '/altcha',
          method: 'GET',
          expected: 200,
        });
        runs.push({ service: service.version, mode: 'on', round, scenario: 'challenge', load });
      }
    }
  });
  return {
    connections: options.connections,
    requests,
    maxCounter: BENCH_MAX_COUNTER,
    solveMsPerPayload: solveMs / Math.max(1, solved),
    verifyMs,
    runs,
  };
}

/** The mean of several runs, field by field (latencies too: the mean of each run's median and p95). */
export function meanTimed(loads: TimedLoad[]): TimedLoad {
  const mean = (pick: (l: TimedLoad) => number) =>
    loads.reduce((a, l) => a + pick(l), 0) / Math.max(1, loads.length);
  return {
    requestsPerSecond: mean((l) => l.requestsPerSecond),
    medianMs: mean((l) => l.medianMs),
    p95Ms: mean((l) => l.p95Ms),
    unexpected: loads.reduce((a, l) => a + l.unexpected, 0),
    total: loads.reduce((a, l) => a + l.total, 0),
    cpuPerRequestUs: {
      server: mean((l) => l.cpuPerRequestUs.server),
      postgres: mean((l) => l.cpuPerRequestUs.postgres),
    },
  };
}
