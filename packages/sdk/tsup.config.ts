import { defineConfig } from 'tsup';

// One entry per subpath export, so a service that only wants one integration does not load the others.
const entries = {
  index: 'src/index.ts',
  'kubernetes/index': 'src/kubernetes/index.ts',
  'testing/index': 'src/testing/index.ts',
  'postgres/index': 'src/postgres/index.ts',
  'redis/index': 'src/redis/index.ts',
  'resilience/index': 'src/resilience/index.ts',
  'server/index': 'src/server/index.ts',
  'ml/index': 'src/ml/index.ts',
  'security/index': 'src/security/index.ts',
  'notify/index': 'src/notify/index.ts',
};

export default defineConfig({
  entry: { ...entries, 'cli/main': 'src/cli/main.ts' },
  format: ['esm'],
  target: 'node22',
  platform: 'node',
  dts: { entry: entries },
  sourcemap: true,
  clean: true,
  splitting: true,
});
