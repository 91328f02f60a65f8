import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TemplateSources } from './render.js';

/** The templates/ folder shipped with the project. */
export const TEMPLATES_DIR = fileURLToPath(new URL('../../templates', import.meta.url));

/** Reads every file under a templates folder into memory (Node only). */
export function loadTemplates(dir: string = TEMPLATES_DIR): TemplateSources {
  const sources: TemplateSources = {};
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    sources[relative(dir, path).split(sep).join('/')] = readFileSync(path, 'utf8');
  }
  return sources;
}
