import { describe, expect, it } from 'vitest';
import { loadTemplates } from '../src/mail/templates-fs.js';

// The Worker bundles templates/ through the import list in src/entry/worker-templates.ts. It can't read the
// folder at run time, so a template added to the folder but not to that list would be missing on Workers.
describe('the templates bundled into the Worker', () => {
  it('are exactly the files in templates/', async () => {
    const source = await import('node:fs').then((fs) =>
      fs.readFileSync(new URL('../src/entry/worker-templates.ts', import.meta.url), 'utf8'),
    );
    const listed = [...source.matchAll(/^\s+'([^']+)': \w+,$/gm)].map((m) => m[1]).sort();
    const imported = [...source.matchAll(/from '\.\.\/\.\.\/templates\/([^']+)'/g)].map((m) => m[1]).sort();
    const files = Object.keys(loadTemplates()).sort();
    expect(listed).toEqual(files);
    expect(imported).toEqual(files);
  });
});
