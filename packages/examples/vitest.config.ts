import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts', 'scripts/**/*.test.ts'],
    testTimeout: 30_000,
    // Two files at a time, whatever the core count: most of a drill's time is waiting on the alert pipeline
    // (scrapes, `for: 30s`, group_wait), and every lab is isolated (its own database, Redis index, free ports).
    maxWorkers: 2,
    // Opening the embedded store takes a few seconds.
    hookTimeout: 60_000,
  },
});
