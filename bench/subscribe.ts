/**
 * POST /subscribe under load (autocannon, 50 connections) against the service as `npm start` runs it on
 * PostgreSQL, and two baselines in the same run: Hono's hello-world, and plain node:http + postgres.js
 * running the same statements. With another version of the service (`--compare`), both run at once, each on
 * its own database, and take turns: each scenario of each round runs one, then the other (the first to go
 * changes every round), so a busy machine weighs on both alike.
 */
import autocannon from 'autocannon';
import postgres from 'postgres';
import { MIGRATIONS_FOLDER } from '../src/db/open.js';
import { migratePostgres } from '../src/db/postgres.js';
import { createServerDatabase, dropServerDatabase } from '../tests/support/db.js';
import type { Child } from './support.js';
import {
  cpuSecondsOf,
  freePort,
  memoryOf,
  postgresCpuSeconds,
  sleep,
  startService,
  startTs,
  waitForPort,
} from './support.js';
import type { ServiceVersion } from './versions.js';

/** `form`: a new address posted as a plain HTML form does it (urlencoded, answered 303). */
export type Scenario = 'new' | 'repeated' | 'invalid' | 'form';
export const SCENARIOS: Scenario[] = ['new', 'repeated', 'invalid', 'form'];
/** How the table names each scenario. */
export const SCENARIO_LABELS: Record<Scenario, string> = {
  new: 'new',
  repeated: 'repeated',
  invalid: 'invalid',
  form: 'new, as a form post',
};
export type Server = 'service' | 'raw' | 'hono';

export interface LoadResult {
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** Answers other than the one expected (202; 422 for the invalid address; 303 for a form), and socket errors. */
  unexpected: number;
  total: number;
  /** CPU time per request (user + system), in microseconds: the server process, and PostgreSQL's processes. */
  cpuPerRequestUs: { server: number; postgres: number };
}

/** One load run of one version of the service. */
export interface SubscribeRun {
  service: string;
  round: number;
  scenario: Scenario;
  load: LoadResult;
}

export interface SubscribeResult {
  connections: number;
  durationSeconds: number;
  /** This working tree: the mean of its rounds. */
  service: Record<Scenario, LoadResult>;
  /** Every run of every version, in the order they ran. */
  runs: SubscribeRun[];
  raw: Record<Scenario, LoadResult>;
  hono: LoadResult;
  serviceMemory: { restMiB: number; afterMiB: number; peakMiB: number };
}

export interface SubscribeOptions {
  durationSeconds: number;
  connections: number;
  /** This working tree first, then the version it is compared with, if any. */
  versions: Pick<ServiceVersion, 'label' | 'root'>[];
  rounds: number;
  log: (line: string) => void;
}

let sequence = 0;

function bodyFor(scenario: Scenario): () => string {
  const run = `${Date.now().toString(36)}-${sequence++}`;
  let i = 0;
  switch (scenario) {
    case 'new':
      return () => JSON.stringify({ email: `new-${run}-${i++}@example.org` });
    case 'repeated':
      return () => JSON.stringify({ email: `repeated-${run}@example.org` });
    case 'invalid':
      return () => JSON.stringify({ email: 'not-an-address' });
    case 'form':
      return () => `email=${encodeURIComponent(`form-${run}-${i++}@example.org`)}`;
  }
}

async function load(
  port: number,
  pid: number,
  scenario: Scenario,
  options: SubscribeOptions,
): Promise<LoadResult> {
  const next = bodyFor(scenario);
  const cpuBefore = await Promise.all([cpuSecondsOf(pid), postgresCpuSeconds()]);
  const expected = scenario === 'invalid' ? 422 : scenario === 'form' ? 303 : 202;
  let unexpected = 0;
  const result = await autocannon({
    url: `http://127.0.0.1:${port}/subscribe`,
    connections: options.connections,
    duration: options.durationSeconds,
    method: 'POST',
    headers:
      scenario === 'form'
        ? { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html' }
        : { 'content-type': 'application/json', accept: 'application/json' },
    requests: [{ setupRequest: (req) => ({ ...req, body: next() }) }],
    setupClient: (client) => {
      client.on('response', (status: number) => {
        if (status !== expected) unexpected++;
      });
    },
  });
  const cpuAfter = await Promise.all([cpuSecondsOf(pid), postgresCpuSeconds()]);
  const perRequestUs = (i: 0 | 1) =>
    ((cpuAfter[i] - cpuBefore[i]) / Math.max(1, result.requests.total)) * 1e6;
  return {
    cpuPerRequestUs: { server: perRequestUs(0), postgres: perRequestUs(1) },
    requestsPerSecond: result.requests.average,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    unexpected: unexpected + result.errors + result.timeouts,
    total: result.requests.total,
  };
}

async function withServer<T>(
  start: (port: number) => Child,
  run: (port: number, child: Child) => Promise<T>,
) {
  const port = await freePort();
  const child = start(port);
  try {
    await waitForPort(port).catch((error) => {
      throw new Error(`${(error as Error).message}; its output:\n${child.output()}`);
    });
    return await run(port, child);
  } finally {
    await child.stop();
  }
}

/** The service's settings for the POST /subscribe benchmarks, on database `url` and `port`. */
export const subscribeEnv = (url: string, port: number) => ({
  DATABASE_URL: url,
  PORT: String(port),
  PUBLIC_URL: `http://127.0.0.1:${port}`,
  MAIL_FROM: 'Essays <essays@example.org>',
  PUBLISHER_TOKEN: 'bench-publisher-token-0123456789',
  // The limits still count every request (the same statement runs), but never refuse one.
  SUBSCRIBE_LIMIT_PER_IP: '1000000',
  SUBSCRIBE_LIMIT_PER_ADDRESS: '1000000',
  // Confirmation emails are a worker's job here (`npm run worker`); the request path is what is measured.
  DISPATCHER: 'false',
});

export async function measureSubscribe(options: SubscribeOptions): Promise<SubscribeResult> {
  const { log } = options;
  const env = subscribeEnv;
  // Half the measured time, before each server's runs: under callgrind the service's first 4,000 requests
  // cost it 2.5× its steady state (V8 compiling a larger app), the raw server's 2.1×.
  const warm = Math.max(1, Math.round(options.durationSeconds / 2));
  const warmUp = (port: number, pid: number) => load(port, pid, 'new', { ...options, durationSeconds: warm });

  log('subscribe: hono hello-world');
  const hono = await withServer(
    (port) => startTs('bench/baselines/hono-hello.ts', [], { PORT: String(port) }),
    async (port, child) => {
      await warmUp(port, child.pid);
      return load(port, child.pid, 'new', options);
    },
  );

  // Each server gets a database of its own, new and empty, after a checkpoint: the one measured second
  // would otherwise write into tables the first had filled, with autovacuum and a checkpoint to pay for.
  log('subscribe: node:http + postgres.js');
  const raw = await onFreshDatabase((url) =>
    withServer(
      (port) => startTs('bench/baselines/raw-subscribe.ts', [], env(url, port)),
      async (port, child) => {
        await warmUp(port, child.pid);
        const out = {} as Record<Scenario, LoadResult>;
        for (const scenario of SCENARIOS) out[scenario] = await load(port, child.pid, scenario, options);
        return out;
      },
    ),
  );

  log(`subscribe: ${options.versions.map((v) => v.label).join(' and ')}`);
  const runs: SubscribeRun[] = [];
  const memory = await withServices(options.versions, env, async (services) => {
    await sleep(300);
    const rest = await memoryOf(services[0].child.pid);
    for (const { port, child } of services) await warmUp(port, child.pid);
    for (let round = 1; round <= options.rounds; round++) {
      for (const scenario of SCENARIOS) {
        const turn = round % 2 === 1 ? services : [...services].reverse();
        for (const { label, port, child } of turn) {
          log(`subscribe: ${label}, ${scenario}, round ${round}`);
          runs.push({
            service: label,
            round,
            scenario,
            load: await load(port, child.pid, scenario, options),
          });
        }
      }
    }
    const after = await memoryOf(services[0].child.pid);
    return { restMiB: rest.rssMiB, afterMiB: after.rssMiB, peakMiB: after.peakMiB };
  });

  const service = {} as Record<Scenario, LoadResult>;
  for (const scenario of SCENARIOS) {
    const mine = runs.filter((r) => r.service === options.versions[0]?.label && r.scenario === scenario);
    service[scenario] = meanLoad(mine.map((r) => r.load));
  }
  return {
    connections: options.connections,
    durationSeconds: options.durationSeconds,
    service,
    runs,
    raw,
    hono,
    serviceMemory: memory,
  };
}

/** The mean of several runs, field by field (latencies too: the mean of each run's p50 and p99). */
export function meanLoad(loads: LoadResult[]): LoadResult {
  const mean = (pick: (l: LoadResult) => number) =>
    loads.reduce((a, l) => a + pick(l), 0) / Math.max(1, loads.length);
  const sum = (pick: (l: LoadResult) => number) => loads.reduce((a, l) => a + pick(l), 0);
  return {
    requestsPerSecond: mean((l) => l.requestsPerSecond),
    p50Ms: mean((l) => l.p50Ms),
    p99Ms: mean((l) => l.p99Ms),
    unexpected: sum((l) => l.unexpected),
    total: sum((l) => l.total),
    cpuPerRequestUs: {
      server: mean((l) => l.cpuPerRequestUs.server),
      postgres: mean((l) => l.cpuPerRequestUs.postgres),
    },
  };
}

export type Running = { label: string; port: number; child: Child };

/**
 * Each version started as `npm start` runs it, each on a fresh database of its own, all at once; `env`,
 * if a version has it, is added to the settings.
 */
export async function withServices<T>(
  versions: (Pick<ServiceVersion, 'label' | 'root'> & { env?: Record<string, string> })[],
  env: (url: string, port: number) => Record<string, string>,
  run: (services: [Running, ...Running[]]) => Promise<T>,
  started: Running[] = [],
): Promise<T> {
  const [version, ...rest] = versions;
  if (!version) return run(started as [Running, ...Running[]]);
  return onFreshDatabase((url) =>
    withServer(
      (port) => startService('start', { ...env(url, port), ...version.env }, version.root),
      (port, child) => withServices(rest, env, run, [...started, { label: version.label, port, child }]),
    ),
  );
}

async function onFreshDatabase<T>(run: (url: string) => Promise<T>): Promise<T> {
  const url = await createServerDatabase();
  try {
    await migratePostgres(url, MIGRATIONS_FOLDER);
    const admin = postgres(url, { max: 1, onnotice: () => {} });
    await admin`checkpoint`.finally(() => admin.end());
    return await run(url);
  } finally {
    await dropServerDatabase(url);
  }
}
