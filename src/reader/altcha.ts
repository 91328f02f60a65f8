import type { Challenge, Payload } from 'altcha-lib/types';
import { sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { jsonParam, rows } from '../db/client.js';
import { coalesced } from '../db/coalesce.js';
import { AppError } from '../http/errors.js';

/**
 * ALTCHA proof of work (issue 26), in altcha-lib's default (v2) format: PBKDF2/SHA-256 through WebCrypto
 * (the same on Node and Workers). The counter is fixed in the signed challenge, so the work is known: the
 * solver derives COST-iteration keys from 0 up to it. Measured with altcha-lib's solver on one core of the
 * test machine: ~0.8 ms a key, so at the default ALTCHA_MAX_COUNTER (200: counters of 50–200) 40–170 ms; a
 * phone's few cores in the widget's workers stay well under a second, and a bot pays that for every
 * address. Checking one costs a single key (~1 ms), whatever the counter: issuing one, too.
 */
const ALGORITHM = 'PBKDF2/SHA-256';
const COST = 1000;

/** altcha-lib, loaded by the first challenge or solution: only with ALTCHA_HMAC_KEY. */
const altcha = () =>
  Promise.all([import('altcha-lib'), import('altcha-lib/algorithms/web/pbkdf2')]).then(
    ([lib, { deriveKey }]) => ({
      ...lib,
      deriveKey,
    }),
  );

/**
 * A fresh challenge signed with ALTCHA_HMAC_KEY, valid for ALTCHA_EXPIRES_SECONDS, its counter from a
 * quarter of ALTCHA_MAX_COUNTER up to it.
 */
export async function newChallenge(
  hmacKey: string,
  expiresSeconds: number,
  maxCounter: number,
): Promise<Challenge> {
  const { createChallenge, randomInt, deriveKey } = await altcha();
  return createChallenge({
    algorithm: ALGORITHM,
    cost: COST,
    counter: randomInt(maxCounter, Math.floor(maxCounter / 4)),
    deriveKey,
    hmacSignatureSecret: hmacKey,
    expiresAt: new Date(Date.now() + expiresSeconds * 1000),
  });
}

/**
 * Checks the widget's `altcha` field: a solution of a challenge this service signed, not expired, and never
 * seen before (its nonce is recorded in the database until it expires: each solution is taken once, by
 * whichever process sees it first).
 * Throws verification_failed with a message for the reader otherwise.
 */
export async function spendSolution(db: Db, hmacKey: string, field: string | undefined): Promise<void> {
  if (!field) {
    throw failed(
      'The form’s anti-robot check did not run. It needs JavaScript: allow it for this page, wait until the check is done, and send the form again.',
    );
  }
  const payload = parsePayload(field);
  let verified = false;
  let expired = false;
  if (payload) {
    const { verifySolution, deriveKey } = await altcha();
    try {
      const result = await verifySolution({
        challenge: payload.challenge,
        solution: payload.solution,
        deriveKey,
        hmacSignatureSecret: hmacKey,
      });
      verified = result.verified && typeof payload.challenge.parameters.expiresAt === 'number';
      expired = result.expired;
    } catch {
      verified = false;
    }
  }
  if (expired) throw failed('The anti-robot check has expired. Reload the page and send the form again.');
  if (!verified || !payload) {
    throw failed('The anti-robot check did not pass. Reload the page and send the form again.');
  }
  const { nonce, expiresAt } = payload.challenge.parameters;
  if (!(await spend(db, { nonce, expiresAt: expiresAt as number }))) {
    throw failed('This anti-robot check was already used. Reload the page and send the form again.');
  }
}

/**
 * Records solutions as spent a batch at a time (see coalesced()): one statement and one durable commit for
 * the solutions checked while the last batch ran, where a statement each cost PostgreSQL more than the
 * rest of the subscription (npm run bench -- --only=altcha). Each solution's nonce is inserted once, in one
 * order (two processes' batches never wait on each other in a cycle); the primary key lets one insert of a
 * nonce through, here or in another process. Within a batch, the first request with a nonce takes it and
 * any other finds it spent, as one after the other would. Each batch also takes a few expired ones away
 * (4 per solution): the table holds about one window's solutions.
 */
const spend = coalesced(async (db: Db, solutions: { nonce: string; expiresAt: number }[]) => {
  const distinct = new Map(solutions.map((s) => [s.nonce, s]));
  const inserted = await rows<{ nonce: string }>(
    db,
    sql`with forgotten as (
          delete from altcha_spent where nonce in (
            select nonce from altcha_spent where expires_at < now() limit ${4 * distinct.size}
            for update skip locked)
        )
        insert into altcha_spent (nonce, expires_at)
        select v.nonce, to_timestamp(v."expiresAt")
        from json_to_recordset(${jsonParam([...distinct.values()])}::json) as v(nonce text, "expiresAt" bigint)
        order by v.nonce
        on conflict (nonce) do nothing returning nonce`,
  );
  const taken = new Set(inserted.map((r) => r.nonce));
  // Set.delete is true once per nonce: for the batch's first request with it.
  return solutions.map((s) => taken.delete(s.nonce));
});

/** The widget's field: base64 of JSON {challenge, solution}. Anything else is no solution. */
function parsePayload(field: string): Payload | undefined {
  if (field.length > 4096) return undefined;
  try {
    const payload = JSON.parse(atob(field)) as Payload;
    const parameters = payload?.challenge?.parameters;
    if (!parameters || typeof parameters.nonce !== 'string' || typeof payload.solution !== 'object') {
      return undefined;
    }
    return payload;
  } catch {
    return undefined;
  }
}

function failed(message: string): AppError {
  return new AppError('verification_failed', message, 'Please try again');
}
