import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { DocsAsset } from '../deps.js';

/**
 * Swagger UI's files from node_modules (swagger-ui-dist, pinned exactly: its file names are its layout),
 * each read once: /docs loads nothing from a CDN.
 */
export function docsAssetsFromPackage(): (name: DocsAsset) => Promise<Uint8Array | undefined> {
  const loaded = new Map<DocsAsset, Promise<Uint8Array | undefined>>();
  return (name) => {
    let file = loaded.get(name);
    if (!file) {
      file = (async () => {
        try {
          const dir = dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));
          return await readFile(join(dir, name));
        } catch {
          return undefined;
        }
      })();
      loaded.set(name, file);
    }
    return file;
  };
}
