import { execFileSync } from 'node:child_process';
import { sweepStaleNamespaces } from './harness.js';

/**
 * Before any test:
 * - compile the TypeScript into dist/, so scenarios that start `nea` processes
 *   run the code under test, never a stale build;
 * - remove namespaces of earlier runs whose process died.
 */
export default function setup(): void {
  execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
  const removed = sweepStaleNamespaces();
  if (removed.length > 0) console.log(`removed ${removed.length} stale test namespace(s) of crashed runs`);
}
