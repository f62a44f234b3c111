import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 30_000,
    // Opening the embedded store takes a few seconds.
    hookTimeout: 60_000,
  },
});
