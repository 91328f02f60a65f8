import { drizzle } from 'drizzle-orm/postgres-js';
import { migrate } from 'drizzle-orm/postgres-js/migrator';
import postgres from 'postgres';
import type { Database, Db } from './client.js';
import { schema } from './client.js';

/** Any number that is ours alone: serialises migrations when several processes start at once. */
const MIGRATION_LOCK = 7_261_001;

/**
 * `fetch_types: false`: postgres.js otherwise looks up array types on every new connection in a query of its
 * own that nobody awaits, and when the connection is cut during that lookup, the rejection goes unhandled
 * (porsager/postgres #1192, #1205, #1223) and would end the process. No statement here reads or writes a
 * PostgreSQL array (lists go in as JSON), so nothing needs those types.
 */
const CLIENT_OPTIONS = {
  max: 1,
  onnotice: () => {},
  connect_timeout: 10,
  idle_timeout: 60,
  fetch_types: false,
} as const;

export interface PostgresOptions {
  poolSize?: number;
  /** Where the generated SQL migrations are; when given, they are applied before the database is returned. */
  migrationsFolder?: string;
}

/**
 * Opens a PostgreSQL server through postgres.js: `poolSize` connections, each its own single-connection
 * postgres.js client (a lane), with queries spread over them (see createLanes).
 */
export async function openPostgres(url: string, options: PostgresOptions = {}): Promise<Database> {
  if (options.migrationsFolder) await migratePostgres(url, options.migrationsFolder);
  const clients = Array.from({ length: Math.max(1, options.poolSize ?? 10) }, () =>
    postgres(url, CLIENT_OPTIONS),
  );
  const lanes = createLanes(clients);
  const db: Db = drizzle(lanes, { schema });
  // drizzle sets how values of some types are read and written on the client it is given: every lane's.
  for (const client of clients) {
    Object.assign(client.options.parsers, lanes.options.parsers);
    Object.assign(client.options.serializers, lanes.options.serializers);
  }
  return {
    db,
    kind: 'postgres',
    async ping() {
      await lanes.unsafe('select 1');
    },
    // postgres.js listens on a connection of its own, outside the lanes, and listens again after a reconnect.
    async listen(channel, onNotify) {
      const { unlisten } = await (clients[0] as postgres.Sql).listen(channel, () => onNotify());
      return unlisten;
    },
    async close() {
      await Promise.all(clients.map((client) => client.end({ timeout: 5 })));
    },
  };
}

/** A lane has gone this long without an answer to what it was sent: a long statement may be running on it. */
const STUCK_MS = 20;

interface Lane {
  client: postgres.Sql;
  /** Queries handed to this lane and not answered yet. */
  inFlight: number;
  /** Transactions holding the lane's connection. */
  transactions: number;
  /** When the lane last answered a query, or was handed one while idle (Date.now()). */
  progressAt: number;
}

/**
 * One postgres.js client to drizzle, over several single-connection clients (lanes). A query goes to the
 * lane with the fewest unanswered ones, and waits there behind them: postgres.js pipelines them on the
 * connection, so PostgreSQL has the next one as soon as it is done with the last. A lane holding a
 * transaction, or one that has answered nothing for a while (a long statement), is passed over while
 * another can take the query. Every query is prepared (see below).
 *
 * Why not one postgres.js client with `max` connections: its queues of connections keep a slot for every
 * move since they were last empty and search them from the start on each move, so under steady load each
 * query cost more than the last (measured: 31 → 116 µs of CPU per query and 32,000 → 8,700 queries/s over
 * 18 s, 50 clients on 10 connections; it was 7.6 % of the service's CPU time in POST /subscribe with 40
 * queries in flight). With one connection each, those queues hold one connection at most.
 *
 * drizzle runs `db.execute(sql…)` unprepared, and postgres.js then asks the server to describe every
 * parameterized statement before running it: two round trips each. Prepared (once per connection and
 * statement text), they take one. Our statements have fixed texts (lists go in as JSON), so the
 * per-connection cache stays small.
 */
export function createLanes(clients: postgres.Sql[]): postgres.Sql {
  const lanes: Lane[] = clients.map((client) => ({ client, inFlight: 0, transactions: 0, progressAt: 0 }));
  let next = 0;

  function choose(): Lane {
    const now = Date.now();
    let best = lanes[0] as Lane;
    let bestScore = Number.POSITIVE_INFINITY;
    // Ties go round the lanes, so that idle lanes all get used.
    for (let i = 0; i < lanes.length; i++) {
      const lane = lanes[(next + i) % lanes.length] as Lane;
      let score = lane.inFlight;
      if (lane.transactions > 0) score += 2_000_000;
      else if (lane.inFlight > 0 && now - lane.progressAt > STUCK_MS) score += 1_000_000;
      if (score < bestScore) {
        best = lane;
        bestScore = score;
        if (score === 0) break;
      }
    }
    next = (next + 1) % lanes.length;
    return best;
  }

  const settled = (lane: Lane) => () => {
    lane.inFlight--;
    lane.progressAt = Date.now();
  };

  function unsafe(query: string, params?: unknown[], options?: { prepare?: boolean }) {
    const lane = choose();
    if (lane.inFlight++ === 0) lane.progressAt = Date.now();
    const pending = lane.client.unsafe(query, params as postgres.ParameterOrJSON<never>[], {
      ...options,
      prepare: true,
    });
    return answerCounted(pending, settled(lane));
  }

  async function begin(...args: unknown[]) {
    const lane = choose();
    lane.transactions++;
    try {
      return await (lane.client.begin as (...a: unknown[]) => Promise<unknown>)(...args);
    } finally {
      lane.transactions--;
    }
  }

  /** Queries sent and not answered, over all lanes (for tests). */
  const inFlight = () => lanes.reduce((sum, lane) => sum + lane.inFlight, 0);

  return new Proxy(clients[0] as postgres.Sql, {
    get(target, key, receiver) {
      if (key === 'unsafe') return unsafe;
      if (key === 'begin') return begin;
      if (key === 'inFlight') return inFlight;
      return Reflect.get(target, key, receiver);
    },
  });
}

/**
 * A postgres.js query as drizzle uses it (awaited, perhaps after `.values()`), which calls `done` once it is
 * answered. postgres.js sends a query when it is first awaited: its answer is watched from then on, through
 * the query's own `then`, so nothing of postgres.js but its public interface is used. (drizzle awaits every
 * query it makes; one made and never awaited would keep its lane looking busy.)
 */
function answerCounted<T extends PromiseLike<unknown>>(query: T, done: () => void): T {
  let watched = false;
  const counted: T = new Proxy(query, {
    get(target, key) {
      if (key === 'then') {
        return (onAnswer?: (value: unknown) => unknown, onFailure?: (reason: unknown) => unknown) => {
          if (!watched) {
            watched = true;
            target.then(done, done);
          }
          return target.then(onAnswer, onFailure);
        };
      }
      const value = Reflect.get(target, key, target);
      if (typeof value !== 'function') return value;
      // Its modifiers (`.values()`, `.raw()`) return the query itself: the counted one is handed back instead.
      return (...args: unknown[]) => {
        const result = value.apply(target, args);
        return result === target ? counted : result;
      };
    },
  });
  return counted;
}

/** Applies the migrations once, even when several processes start together (an advisory lock serialises them). */
export async function migratePostgres(url: string, migrationsFolder: string): Promise<void> {
  const client = postgres(url, { ...CLIENT_OPTIONS, idle_timeout: 0 });
  try {
    await client`select pg_advisory_lock(${MIGRATION_LOCK})`;
    await migrate(drizzle(client), { migrationsFolder });
  } finally {
    await client.end({ timeout: 5 });
  }
}
