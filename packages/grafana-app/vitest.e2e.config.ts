import { defineConfig } from 'vitest/config';

/**
 * The build-level tests (e2e/): checks of the built dist/ and a browser test of dist/module.js loaded
 * the way Grafana loads it. The global setup builds dist/ first when it is missing or stale.
 */
export default defineConfig({
  test: {
    include: ['e2e/**/*.test.ts'],
    environment: 'node',
    globalSetup: ['e2e/global-setup.ts'],
    // One Chromium and one service per file; the files share 2 cores with the rest of the work.
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
