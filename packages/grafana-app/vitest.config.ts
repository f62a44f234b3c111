import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.{ts,tsx}'],
    environment: 'jsdom',
    setupFiles: ['./src/test/setup.ts'],
    // @grafana/* ship ESM that imports CommonJS packages by named exports (moment-timezone's `tz`), and
    // rc-* / @rc-component/* import files without extensions, which Node's own loader rejects: let vite
    // transform them instead.
    server: { deps: { inline: [/@grafana\//, /@rc-component\//, /\/rc-[^/]+\//] } },
    // The first import of @grafana/ui takes 7–10 s on two cores; component tests also start a service.
    testTimeout: 60_000,
    hookTimeout: 90_000,
  },
});
