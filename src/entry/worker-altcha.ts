// The ALTCHA widget's files, bundled into the Worker as text (wrangler.toml [[rules]]): a Worker has no
// node_modules to read them from at run time. The same files src/entry/vendor.ts serves on Node.
// Relative paths: the package's exports name none of these files.

import widgetCss from '../../node_modules/altcha/dist/external/altcha.css';
// @ts-expect-error: a .js file bundled as text by wrangler's rules, not a module TypeScript can read
import widgetJs from '../../node_modules/altcha/dist/external/altcha.min.js';
// @ts-expect-error: a .js file bundled as text by wrangler's rules, not a module TypeScript can read
import workerJs from '../../node_modules/altcha/dist/workers/pbkdf2.js';
import type { AltchaWidgetFile } from '../deps.js';

const encoder = new TextEncoder();
const files: Record<AltchaWidgetFile, string> = {
  'widget.js': widgetJs as string,
  'widget.css': widgetCss,
  'worker.js': workerJs as string,
};

/** The widget's files as the Worker serves them under /altcha/. */
export async function altchaWidgetInWorker(file: AltchaWidgetFile): Promise<Uint8Array | undefined> {
  const text = files[file];
  return text === undefined ? undefined : encoder.encode(text);
}
