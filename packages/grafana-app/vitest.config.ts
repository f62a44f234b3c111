import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.{ts,tsx}'],
    // @grafana/* ship ESM that imports CommonJS packages by named exports (moment-timezone's `tz`),
    // which Node's own loader rejects; let vite transform them instead.
    server: { deps: { inline: [/@grafana\//] } },
  },
});
