import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { AltchaWidgetFile } from '../deps.js';

/** The ALTCHA widget's files in its npm package: the build without bundled workers and styles (strict CSP). */
const FILES: Record<AltchaWidgetFile, string> = {
  'widget.js': 'external/altcha.min.js',
  'widget.css': 'external/altcha.css',
  'worker.js': 'workers/pbkdf2.js',
};

/** The widget from node_modules (npm `altcha`, updated with the lockfile), each file read once: no CDN. */
export function altchaWidgetFromPackage(): (file: AltchaWidgetFile) => Promise<Uint8Array | undefined> {
  const loaded = new Map<AltchaWidgetFile, Promise<Uint8Array | undefined>>();
  return (file) => {
    let bytes = loaded.get(file);
    if (!bytes) {
      bytes = (async () => {
        try {
          // `altcha`'s require entry is dist/main/altcha.umd.cjs: dist/ is two levels up.
          const dist = dirname(dirname(createRequire(import.meta.url).resolve('altcha')));
          return await readFile(join(dist, FILES[file]));
        } catch {
          return undefined;
        }
      })();
      loaded.set(file, bytes);
    }
    return bytes;
  };
}
