import { sweepStaleNamespaces } from './harness.js';

/** Before any test: remove namespaces of earlier runs whose process died. */
export default function setup(): void {
  const removed = sweepStaleNamespaces();
  if (removed.length > 0) console.log(`removed ${removed.length} stale test namespace(s) of crashed runs`);
}
