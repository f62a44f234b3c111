/**
 * `pnpm bench`: what the app costs Grafana, against an empty app built the same way.
 *
 * - Size: gzip bytes of every JavaScript file in dist/ (module.js and its chunks) for this app and for an
 *   empty `AppPlugin` whose root page renders one line, both built by this package's webpack config.
 * - Time to first render: in headless Chromium, on the host page of the browser test (the real Grafana
 *   packages via SystemJS) with the same runbook service behind the proxy double, the time from the start
 *   of the import of module.js to the first text the root page puts on the page (`plugin`), and from
 *   navigation start (`page`, mostly the host's own start-up); the median of several loads each.
 *
 * It prints a table and writes e2e/artifacts/bench.json. No thresholds: it measures, it does not judge.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { launchChromium } from '../browser.ts';
import setup from '../global-setup.ts';
import { HOST_BUILD_DIR } from '../host/build.ts';
import '../host/state.ts';
import { startHostServer } from '../server.ts';
import { startService } from '../service.ts';

const here = dirname(fileURLToPath(import.meta.url));
const packageDir = join(here, '..', '..');
const ARTIFACTS = join(packageDir, 'e2e', 'artifacts');
/** Inside the package so module resolution finds its node_modules; a dot-dir, so the real build's glob skips it. */
const EMPTY_DIR = join(packageDir, 'e2e', '.bench-empty');
const LOADS = Number(process.env.BENCH_LOADS ?? 5);

/** Builds the empty app with this package's webpack config; returns its dist/. */
function buildEmptyApp(): string {
  rmSync(EMPTY_DIR, { recursive: true, force: true });
  mkdirSync(join(EMPTY_DIR, 'src', 'img'), { recursive: true });
  const pluginJson = readFileSync(join(packageDir, 'src', 'plugin.json'), 'utf8');
  writeFileSync(join(EMPTY_DIR, 'src', 'plugin.json'), pluginJson);
  copyFileSync(join(packageDir, 'src', 'img', 'logo.svg'), join(EMPTY_DIR, 'src', 'img', 'logo.svg'));
  writeFileSync(
    join(EMPTY_DIR, 'src', 'module.tsx'),
    `import { AppPlugin } from '@grafana/data';
import React from 'react';

function Empty() {
  return <div>empty app</div>;
}

export const plugin = new AppPlugin<{}>().setRootPage(Empty);
`,
  );
  for (const file of ['package.json', 'README.md', 'CHANGELOG.md', 'LICENSE', 'tsconfig.json']) {
    copyFileSync(join(packageDir, file), join(EMPTY_DIR, file));
  }
  writeFileSync(join(EMPTY_DIR, 'tsconfig.json'), JSON.stringify({ extends: '../../tsconfig.json' }));
  // This package's config, with the filesystem cache off so the two builds never share one.
  writeFileSync(
    join(EMPTY_DIR, 'webpack.config.ts'),
    `import config from '../../webpack.config.ts';
export default async (env: Record<string, unknown>) => ({ ...(await config(env as never)), cache: false });
`,
  );
  execFileSync(
    join(packageDir, 'node_modules', '.bin', 'webpack'),
    ['--disable-interpret', '-c', './webpack.config.ts', '--env', 'production'],
    { cwd: EMPTY_DIR, stdio: ['ignore', 'ignore', 'inherit'] },
  );
  return join(EMPTY_DIR, 'dist');
}

/** gzip bytes (level 9) and raw bytes of the .js files in a dist/ that `pick` keeps (default: every one). */
function jsSize(
  dist: string,
  pick: (file: string) => boolean = () => true,
): { files: number; raw: number; gzip: number } {
  const files = readdirSync(dist, { recursive: true, encoding: 'utf8' }).filter(
    (f) => f.endsWith('.js') && pick(f),
  );
  let raw = 0;
  let gzip = 0;
  for (const file of files) {
    const content = readFileSync(join(dist, file));
    raw += content.length;
    gzip += gzipSync(content, { level: 9 }).length;
  }
  return { files: files.length, raw, gzip };
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
};

async function main() {
  await setup(); // this app's dist/ fresh, and the host page bundled
  const emptyDist = buildEmptyApp();
  // module.js is what every Grafana page loads (the links must be registered); the rest is fetched on use.
  const moduleOnly = (f: string) => f === 'module.js';
  const sizes = {
    app: jsSize(join(packageDir, 'dist')),
    empty: jsSize(emptyDist),
    appModule: jsSize(join(packageDir, 'dist'), moduleOnly),
    emptyModule: jsSize(emptyDist, moduleOnly),
  };

  const service = await startService();
  const browser = await launchChromium();
  const times: Record<'app' | 'empty', { page: number[]; plugin: number[] }> = {
    app: { page: [], plugin: [] },
    empty: { page: [], plugin: [] },
  };
  try {
    for (const [name, distDir] of [
      ['app', join(packageDir, 'dist')],
      ['empty', emptyDist],
    ] as const) {
      const host = await startHostServer({
        distDir,
        hostBuildDir: HOST_BUILD_DIR,
        serviceUrl: service.url,
        serviceToken: service.grafanaToken,
        user: { login: 'bench', role: 'Viewer' },
      });
      try {
        // One load first to warm Chromium's caches of the host bundle, as Grafana's would be.
        for (let i = 0; i <= LOADS; i++) {
          const page = await browser.context.newPage();
          await page.goto(`${host.url}/a/aiwebtest-runbooks-app`);
          await page.waitForFunction(
            () =>
              window.__host?.phase === 'failed' ||
              (document.getElementById('reactRoot')?.textContent?.trim().length ?? 0) > 0,
            undefined,
            { timeout: 30_000 },
          );
          const result = await page.evaluate(() => ({
            phase: window.__host.phase,
            error: window.__host.error,
            at: performance.now(),
            importStartedAt: window.__host.importStartedAt ?? Number.NaN,
          }));
          if (result.phase === 'failed') throw new Error(`${name}: ${result.error}`);
          if (i > 0) {
            times[name].page.push(result.at);
            times[name].plugin.push(result.at - result.importStartedAt);
          }
          await page.close();
        }
      } finally {
        await host.close();
      }
    }
  } finally {
    await browser.close();
    await service.stop();
    rmSync(EMPTY_DIR, { recursive: true, force: true });
  }

  const report = {
    date: new Date().toISOString(),
    loads: LOADS,
    size: sizes,
    firstRenderMs: {
      plugin: { app: median(times.app.plugin), empty: median(times.empty.plugin) },
      page: { app: median(times.app.page), empty: median(times.empty.page) },
      samples: times,
    },
  };
  mkdirSync(ARTIFACTS, { recursive: true });
  writeFileSync(join(ARTIFACTS, 'bench.json'), `${JSON.stringify(report, null, 2)}\n`);
  const kib = (n: number) => `${(n / 1024).toFixed(1)} KiB`;
  console.log('                     app        empty app   difference');
  console.log(
    `module.js gzip ${kib(sizes.appModule.gzip).padStart(10)}   ${kib(sizes.emptyModule.gzip).padStart(10)}   ${kib(sizes.appModule.gzip - sizes.emptyModule.gzip).padStart(10)}   (${(sizes.appModule.gzip / sizes.emptyModule.gzip).toFixed(1)}×)`,
  );
  console.log(
    `all JS gzip    ${kib(sizes.app.gzip).padStart(10)}   ${kib(sizes.empty.gzip).padStart(10)}   ${kib(sizes.app.gzip - sizes.empty.gzip).padStart(10)}`,
  );
  console.log(
    `JS raw         ${kib(sizes.app.raw).padStart(10)}   ${kib(sizes.empty.raw).padStart(10)}   ${kib(sizes.app.raw - sizes.empty.raw).padStart(10)}`,
  );
  const ms = (n: number) => `${n.toFixed(0)} ms`;
  for (const kind of ['plugin', 'page'] as const) {
    const { app, empty } = report.firstRenderMs[kind];
    console.log(
      `render (${kind})`.padEnd(15) +
        `${ms(app).padStart(10)}   ${ms(empty).padStart(10)}   ${ms(app - empty).padStart(10)}`,
    );
  }
  console.log(`(median of ${LOADS} loads each; written to ${join(ARTIFACTS, 'bench.json')})`);
}

await main();
