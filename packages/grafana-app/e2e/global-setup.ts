/**
 * Runs once before the e2e files: builds dist/ with the package's own `build` script when it is missing
 * or older than any of its inputs (so the tests always check the bundle of the current sources), and
 * bundles the host page (host/build.ts).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, utimesSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildHost } from './host/build.ts';

const packageDir = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Tests and their harness (src/test/) are not bundled: changing them does not make dist/ stale. */
const NOT_BUILT = /(\.test\.[jt]sx?$)|([\\/]src[\\/]test([\\/]|$))/;

/** The newest modification time among `paths` (files or directories, recursively), tests left out. */
function newest(paths: string[]): number {
  let latest = 0;
  for (const path of paths) {
    if (!existsSync(path) || NOT_BUILT.test(path)) continue;
    const stat = statSync(path);
    if (stat.isDirectory()) {
      // A directory's own time too: deleting a source file changes only that.
      latest = Math.max(latest, stat.mtimeMs, newest(readdirSync(path).map((name) => join(path, name))));
    } else {
      latest = Math.max(latest, stat.mtimeMs);
    }
  }
  return latest;
}

/** True when dist/ lacks module.js or plugin.json, or a build input changed after module.js was written. */
export function distIsStale(): boolean {
  const moduleJs = join(packageDir, 'dist', 'module.js');
  if (!existsSync(moduleJs) || !existsSync(join(packageDir, 'dist', 'plugin.json'))) return true;
  const inputs = [
    'src',
    '.config',
    'webpack.config.ts',
    'package.json',
    'README.md',
    'CHANGELOG.md',
    'LICENSE',
  ];
  return newest(inputs.map((p) => join(packageDir, p))) > statSync(moduleJs).mtimeMs;
}

export default async function setup() {
  if (distIsStale()) {
    // The package's own build script, so the tests check exactly what `pnpm build` ships.
    const script = (
      JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8')) as { scripts: { build: string } }
    ).scripts.build;
    execFileSync('sh', ['-c', script], {
      cwd: packageDir,
      stdio: ['ignore', 'ignore', 'inherit'],
      env: { ...process.env, PATH: `${join(packageDir, 'node_modules', '.bin')}:${process.env.PATH}` },
    });
    // webpack leaves a file it would write unchanged untouched (and its time old): mark the build's time.
    const now = new Date();
    utimesSync(join(packageDir, 'dist', 'module.js'), now, now);
  }
  await buildHost();
}
