import { sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { rows } from '../db/client.js';
import type { EssayForEmail, EssayLetters, MessageConfig } from '../mail/messages.js';
import { essayLetters } from '../mail/messages.js';
import type { Renderer } from '../mail/render.js';

/** Essays whose letters a dispatcher keeps ready: memory stays flat however many essays it sends. */
const MAX_ESSAYS_KEPT = 8;

/** Each essay's letters, built from templates rendered once per send-out and kept for the send-outs under way. */
export function createLetterCache(db: Db, config: MessageConfig, renderer: Renderer) {
  const letters = new Map<number, Promise<EssayLetters>>();
  return (essayId: number): Promise<EssayLetters> => {
    let found = letters.get(essayId);
    if (found) return found;
    found = rows<EssayForEmail>(
      db,
      sql`select id, slug, title, url, summary from essays where id = ${essayId}`,
    ).then(([essay]) => {
      if (!essay) throw new Error(`essay ${essayId} not found`);
      return essayLetters(config, renderer, essay);
    });
    found.catch(() => letters.delete(essayId));
    letters.set(essayId, found);
    // The oldest goes (built again, should its send-out still have retries to come).
    if (letters.size > MAX_ESSAYS_KEPT) letters.delete(letters.keys().next().value as number);
    return found;
  };
}
