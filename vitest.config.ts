import { defineConfig } from 'vitest/config';

// One configuration for both suites:
//   npx vitest run src          unit tests (no privileges needed)
//   npx vitest run netns-tests  real-kernel scenarios in network namespaces (root)
// Test files run in separate processes (forks), so each netns scenario owns its
// process: a setns() or an open TAP in one file can never leak into another.
export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'netns-tests/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
    fileParallelism: true,
    reporters: ['default'],
    globalSetup: ['netns-tests/global-setup.ts'],
  },
});
