import { execFileSync } from 'node:child_process';
import { sweepStaleNamespaces } from './harness.js';

/**
 * Before any test:
 * - compile the TypeScript into dist/, so scenarios that start `nea` processes
 *   run the code under test, never a stale build;
 * - remove namespaces of earlier runs whose process died.
 * NEA_TEST_NO_BUILD=1 skips the compile (unit tests while dist/ is built
 * separately); `npm test` always builds.
 */
export default function setup(): void {
  if (process.env.NEA_TEST_NO_BUILD !== '1') execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
  const removed = sweepStaleNamespaces();
  if (removed.length > 0) console.log(`removed ${removed.length} stale test namespace(s) of crashed runs`);
}
