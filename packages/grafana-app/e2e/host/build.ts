/**
 * Bundles the host page's script (host/host.tsx) with esbuild into e2e/.host-build/. Run by the e2e
 * global setup; `node e2e/host/build.ts` builds it by hand.
 * esbuild is pinned to the version esbuild-loader (the webpack build's TS loader) uses.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type PluginBuild } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const packageDir = join(here, '..', '..');
const requireFromPackage = createRequire(join(packageDir, 'package.json'));

/** Where the bundle goes: `host.js` and `host.css`. */
export const HOST_BUILD_DIR = join(here, '..', '.host-build');

/** react-router (v6) is only a dependency of react-router-dom: the host takes the copy react-router-dom uses. */
function reactRouterDomDir(): string {
  return dirname(requireFromPackage.resolve('react-router-dom/package.json'));
}

/** Builds the host bundle; returns the output directory. */
export async function buildHost(): Promise<string> {
  await build({
    entryPoints: [join(here, 'host.tsx')],
    outfile: join(HOST_BUILD_DIR, 'host.js'),
    absWorkingDir: packageDir,
    bundle: true,
    format: 'iife',
    platform: 'browser',
    target: 'es2020',
    jsx: 'automatic',
    minify: false,
    sourcemap: false,
    logLevel: 'error',
    plugins: [
      {
        // Only the host's own `react-router` import needs help; @grafana/runtime's react-router-dom v5
        // must keep resolving to its own react-router v5.
        name: 'host-react-router',
        setup(plugin: PluginBuild) {
          // Resolved from react-router-dom v6's own directory, so the host and react-router-dom share
          // one copy (one router context), whichever entry (ESM or CJS) esbuild picks.
          const resolveDir = reactRouterDomDir();
          plugin.onResolve({ filter: /^react-router$/ }, async (args) => {
            if (!args.importer.startsWith(here) || args.pluginData === 'host-react-router') return undefined;
            const result = await plugin.resolve('react-router', {
              kind: args.kind,
              resolveDir,
              pluginData: 'host-react-router',
            });
            return result.errors.length > 0 ? { errors: result.errors } : { path: result.path };
          });
        },
      },
    ],
    define: {
      'process.env.NODE_ENV': '"production"',
      global: 'window',
      // SystemJS's AMD extra defines a global `define.amd`: UMD code in the host would then register
      // itself with SystemJS instead of exporting. The host is not AMD, so hide `define` from it.
      define: 'undefined',
    },
    loader: {
      '.css': 'css',
      '.svg': 'dataurl',
      '.png': 'dataurl',
      '.woff': 'empty',
      '.woff2': 'empty',
      '.ttf': 'empty',
      '.eot': 'empty',
    },
  });
  return HOST_BUILD_DIR;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const started = Date.now();
  await buildHost();
  console.log(`host bundle in ${HOST_BUILD_DIR} (${Date.now() - started} ms)`);
}
