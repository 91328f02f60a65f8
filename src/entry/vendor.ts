import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { AltchaWidgetFile, DocsAsset } from '../deps.js';

/**
 * Files of browser packages that the service serves as they are, so that nothing loads from a CDN: Swagger UI
 * for /docs (swagger-ui-dist, pinned exactly: its file names are its layout) and the ALTCHA widget (`altcha`:
 * the build without bundled workers and styles, for a strict CSP). `npm run build` copies them into
 * dist/vendor/<package>/, so a production install (`npm prune --omit=dev`) runs without these packages.
 */
export const VENDOR_FILES = {
  'swagger-ui-dist': ['swagger-ui-bundle.js', 'swagger-ui.css'],
  altcha: ['dist/external/altcha.min.js', 'dist/external/altcha.css', 'dist/workers/pbkdf2.js'],
} as const satisfies Record<string, readonly string[]>;

type VendorPackage = keyof typeof VENDOR_FILES;
type VendorFile<P extends VendorPackage> = (typeof VENDOR_FILES)[P][number];

const ALTCHA_FILES: Record<AltchaWidgetFile, VendorFile<'altcha'>> = {
  'widget.js': 'dist/external/altcha.min.js',
  'widget.css': 'dist/external/altcha.css',
  'worker.js': 'dist/workers/pbkdf2.js',
};

/** /docs's files (Swagger UI's bundle and stylesheet), each read once. */
export const docsAssetsFromPackage = () => vendorReader('swagger-ui-dist', (name: DocsAsset) => name);

/** The ALTCHA widget's files, each read once. */
export const altchaWidgetFromPackage = () =>
  vendorReader('altcha', (file: AltchaWidgetFile) => ALTCHA_FILES[file]);

/**
 * Reads a package's file where it is: the build's copy beside this module (dist/vendor/), else, run from the
 * sources, the package in node_modules (src/ and dist/ are at the same depth). Each file is read once.
 */
function vendorReader<P extends VendorPackage, K extends string>(
  pkg: P,
  fileOf: (key: K) => VendorFile<P>,
): (key: K) => Promise<Uint8Array | undefined> {
  const loaded = new Map<K, Promise<Uint8Array | undefined>>();
  return (key) => {
    let bytes = loaded.get(key);
    if (!bytes) {
      const file = fileOf(key);
      bytes = readFile(fileURLToPath(new URL(`../vendor/${pkg}/${file}`, import.meta.url)))
        .catch(() => readFile(fileURLToPath(new URL(`../../node_modules/${pkg}/${file}`, import.meta.url))))
        .catch(() => undefined);
      loaded.set(key, bytes);
    }
    return bytes;
  };
}
