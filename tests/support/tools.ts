/**
 * vitest's globalSetup: installs, before any test starts, the tool of tools/ that a tier's tests need and that
 * `npm install` leaves out (scripts/tool.mjs): Prism for the fast tier's contract tests, wrangler and workerd
 * for the slow tier's Workers tests. Once installed, this only reads two lockfiles. The tests ask for their
 * tool again when they use it, so that one file run alone needs no global setup.
 */
import type { TestProject } from 'vitest/node';
import { ensureTool } from '../../scripts/tool.mjs';

export default function setup(project: TestProject): void {
  ensureTool(project.name.endsWith('-slow') ? 'workers' : 'contract');
}
