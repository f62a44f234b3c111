import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { shellWord } from './shell';

/** A package the scaffolded files import, and whether it is a runtime or a test-only dependency. */
interface Needed {
  name: string;
  dev: boolean;
}

// What the generated runbook and its test import. The SDK itself is listed too: `npx runbook init` may run
// from a copy that the target project does not have.
const NEEDED: readonly Needed[] = [
  { name: '@aiwebtest/runbooks', dev: false },
  { name: 'zod', dev: false },
  { name: '@kubernetes/client-node', dev: false },
  { name: 'vitest', dev: true },
];

/**
 * The packages the scaffolded files import that Node would not find from `dir`, in install order: looked up
 * in the `node_modules` folders of `dir` and its parents, as Node's resolution does. (`require.resolve`
 * would say the same under plain Node, but loaders such as tsx and vitest hook it and fall back to their
 * own root, so it finds packages the project does not have.) With Yarn Plug'n'Play there are no such
 * folders: then Yarn's own resolution answers.
 */
export function missingPackages(dir: string): string[] {
  const parents = upwards(dir);
  const pnp = parents.some((d) => existsSync(join(d, '.pnp.cjs')));
  const require = createRequire(join(dir, 'noop.js'));
  // The package that holds `dir` imports itself by its name (self-reference), as the SDK's own tests do.
  const own = parents.map(packageName).find((n) => n !== undefined);
  const found = (name: string) =>
    name === own ||
    (pnp
      ? resolves(require, name)
      : parents.some((d) => existsSync(join(d, 'node_modules', name, 'package.json'))));
  return NEEDED.filter(({ name }) => !found(name)).map((n) => n.name);
}

/** The `name` in `dir/package.json`; `null` when it has none or is not JSON; `undefined` without one. */
function packageName(dir: string): string | null | undefined {
  const file = join(dir, 'package.json');
  if (!existsSync(file)) return undefined;
  try {
    const { name } = JSON.parse(readFileSync(file, 'utf8')) as { name?: unknown };
    return typeof name === 'string' ? name : null;
  } catch {
    return null;
  }
}

function resolves(require: ReturnType<typeof createRequire>, name: string): boolean {
  try {
    require.resolve(name);
    return true;
  } catch (e) {
    // An ESM-only package (exports with only an `import` condition) is installed, just not require()-able.
    return (e as { code?: string }).code === 'ERR_PACKAGE_PATH_NOT_EXPORTED';
  }
}

/** The package manager a project uses, told by its lockfile (npm when there is none). */
export type PackageManager = 'pnpm' | 'yarn' | 'bun' | 'npm';

const LOCKFILES: readonly [string, PackageManager][] = [
  ['pnpm-lock.yaml', 'pnpm'],
  ['yarn.lock', 'yarn'],
  ['bun.lock', 'bun'],
  ['bun.lockb', 'bun'],
  ['package-lock.json', 'npm'],
];

/** `dir` and its parents, nearest first. */
function upwards(dir: string): string[] {
  const dirs = [dir];
  for (let d = dir; dirname(d) !== d; d = dirname(d)) dirs.push(dirname(d));
  return dirs;
}

/**
 * The commands that install `missing` for files in `dir`, as typed in `cwd`: runtime dependencies, then
 * test-only ones (`-D`), with the package manager of the nearest lockfile, in the package that holds `dir`
 * (`cd` there first when it is not `cwd`; `-w` at a pnpm workspace root, which refuses a plain add).
 */
export function installCommands(missing: readonly string[], dir: string, cwd: string): string[] {
  const runtime = NEEDED.filter((n) => !n.dev && missing.includes(n.name)).map((n) => n.name);
  const dev = NEEDED.filter((n) => n.dev && missing.includes(n.name)).map((n) => n.name);
  if (runtime.length === 0 && dev.length === 0) return [];

  const parents = upwards(dir);
  let manager: PackageManager = 'npm';
  for (const d of parents) {
    const found = LOCKFILES.find(([file]) => existsSync(join(d, file)));
    if (found) {
      manager = found[1];
      break;
    }
  }
  const pkg = parents.find((d) => existsSync(join(d, 'package.json')));
  const root = manager === 'pnpm' && pkg !== undefined && existsSync(join(pkg, 'pnpm-workspace.yaml'));
  const add = `${manager === 'npm' ? 'npm i' : `${manager} add`}${root ? ' -w' : ''}`;
  const where = pkg !== undefined && pkg !== cwd ? `cd ${shellWord(relative(cwd, pkg) || '.')} && ` : '';
  return [
    ...(runtime.length > 0 ? [`${where}${add} ${runtime.join(' ')}`] : []),
    ...(dev.length > 0 ? [`${where}${add} -D ${dev.join(' ')}`] : []),
  ];
}
