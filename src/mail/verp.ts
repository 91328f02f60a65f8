import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Envelope senders that name their letter (VERP): `bounces+<id>@example.com` for BOUNCE_ADDRESS
 * `bounces@example.com`, where the id stands for one essay and one subscriber. A bounce or a complaint that
 * comes back to that address says which delivery it is about, whatever the receiving side wrote in it.
 *
 * The id is made with a key derived from the publisher token, which every process of one service shares (the
 * Node entry keeps a generated one in DATA_DIR): nothing is stored per letter, and an id nobody can make
 * without the key. It is a deterministic authenticated encryption of the two numbers (SIV, with HMAC-SHA256
 * as the PRF): a tag of the pair, then the pair masked with a stream drawn from the tag. So it is
 * - unforgeable: an id is accepted only if the tag recomputed from the numbers it unmasks to matches (80 bits);
 * - opaque: a reader sees in it neither their subscriber number (how big the list is) nor the essay's;
 * - the same for the same letter: a resend has the same envelope sender as the first try.
 * Hex digits only, so a server that changes the local part's case changes nothing; 36 characters, well within
 * a local part's 64 with the `+` and a short BOUNCE_ADDRESS.
 */

export interface Delivery {
  essayId: number;
  subscriberId: number;
}

export interface Verp {
  /** The envelope sender of the letter about `essayId` to `subscriberId`. */
  address(delivery: Delivery): string;
  /** The delivery an address names, if it is BOUNCE_ADDRESS with an id this service made; else undefined. */
  read(address: string): Delivery | undefined;
}

const TAG_BYTES = 10;
const PAIR_BYTES = 8;

export function createVerp(bounceAddress: string, secret: string): Verp {
  const at = bounceAddress.lastIndexOf('@');
  const local = bounceAddress.slice(0, at);
  const domain = bounceAddress.slice(at + 1).toLowerCase();
  const key = createHmac('sha256', secret).update('oneletter VERP id').digest();
  const prf = (label: string, data: Buffer) => createHmac('sha256', key).update(label).update(data).digest();
  const mask = (tag: Buffer, pair: Buffer) => {
    const stream = prf('mask', tag);
    return Buffer.from(pair.map((b, i) => b ^ (stream[i] as number)));
  };
  const shape = new RegExp(
    `^${literal(local.toLowerCase())}\\+([0-9a-f]{${2 * (TAG_BYTES + PAIR_BYTES)}})@${literal(domain)}$`,
  );

  return {
    address({ essayId, subscriberId }) {
      const pair = Buffer.alloc(PAIR_BYTES);
      pair.writeUInt32BE(essayId, 0);
      pair.writeUInt32BE(subscriberId, 4);
      const tag = prf('tag', pair).subarray(0, TAG_BYTES);
      return `${local}+${Buffer.concat([tag, mask(tag, pair)]).toString('hex')}@${domain}`;
    },
    read(address) {
      const match = shape.exec(address.trim().replace(/^<|>$/g, '').toLowerCase());
      if (!match?.[1]) return undefined;
      const id = Buffer.from(match[1], 'hex');
      const tag = id.subarray(0, TAG_BYTES);
      const pair = mask(tag, id.subarray(TAG_BYTES));
      if (!timingSafeEqual(tag, prf('tag', pair).subarray(0, TAG_BYTES))) return undefined;
      return { essayId: pair.readUInt32BE(0), subscriberId: pair.readUInt32BE(4) };
    },
  };
}

function literal(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
