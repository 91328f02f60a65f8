import type { Challenge, Payload } from 'altcha-lib/types';
import { sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { rows } from '../db/client.js';
import { AppError } from '../http/errors.js';

/**
 * ALTCHA proof of work (issue 26), in altcha-lib's default (v2) format: PBKDF2/SHA-256 through WebCrypto
 * (the same on Node and Workers). The counter is fixed in the signed challenge, so the work is known: the
 * solver derives COST-iteration keys from 0 up to it. Measured with altcha-lib's solver on one core of the
 * test machine: ~0.8 ms a key, so 50–200 keys are 40–170 ms; a phone's few cores in the widget's workers
 * stay well under a second, and a bot pays that for every address. Checking one costs a single key (~1 ms).
 */
const ALGORITHM = 'PBKDF2/SHA-256';
const COST = 1000;
const COUNTER_MIN = 50;
const COUNTER_MAX = 200;

/** altcha-lib, loaded by the first challenge or solution: only with ALTCHA_HMAC_KEY. */
const altcha = () =>
  Promise.all([import('altcha-lib'), import('altcha-lib/algorithms/web/pbkdf2')]).then(
    ([lib, { deriveKey }]) => ({
      ...lib,
      deriveKey,
    }),
  );

/** A fresh challenge signed with ALTCHA_HMAC_KEY, valid for ALTCHA_EXPIRES_SECONDS. */
export async function newChallenge(hmacKey: string, expiresSeconds: number): Promise<Challenge> {
  const { createChallenge, randomInt, deriveKey } = await altcha();
  return createChallenge({
    algorithm: ALGORITHM,
    cost: COST,
    counter: randomInt(COUNTER_MAX, COUNTER_MIN),
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
  // Each insert also takes a few expired ones away: the table holds about one window's solutions.
  const [spent] = await rows(
    db,
    sql`with forgotten as (
          delete from altcha_spent where nonce in (
            select nonce from altcha_spent where expires_at < now() limit 4 for update skip locked)
        )
        insert into altcha_spent (nonce, expires_at) values (${nonce}, to_timestamp(${expiresAt}))
        on conflict (nonce) do nothing returning 1`,
  );
  if (!spent) {
    throw failed('This anti-robot check was already used. Reload the page and send the form again.');
  }
}

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
