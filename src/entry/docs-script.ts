import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/** Scalar's standalone API reference bundle from node_modules, read once: /docs loads nothing from a CDN. */
export function docsScriptFromPackage(): () => Promise<Uint8Array | undefined> {
  let loaded: Promise<Uint8Array | undefined> | undefined;
  return () => {
    loaded ??= (async () => {
      try {
        const entry = createRequire(import.meta.url).resolve('@scalar/api-reference');
        return await readFile(join(dirname(entry), 'browser', 'standalone.js'));
      } catch {
        return undefined;
      }
    })();
    return loaded;
  };
}
