import { createRequire } from 'node:module';
import { isAbsolute, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { isRunbook, type Runbook } from '../core/runbook';
import { UsageError } from './exit-codes';

/** The module specs to load: `--runbooks` options, else `RUNBOOK_MODULES` (comma-separated). */
export function runbookSpecs(
  options: readonly string[] | undefined,
  env: Record<string, string | undefined>,
): string[] {
  if (options && options.length > 0) return [...options];
  return (env.RUNBOOK_MODULES ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/**
 * Imports runbook modules and collects their runbooks. A spec starting with `.` or `/` is a file relative to
 * `cwd` (a `.ts` file works on Node ≥ 22.18 by type stripping); anything else is a package resolved from `cwd`.
 * A module contributes `export const runbooks = [...]`, a default export array (or runbook), and any named
 * export that is a runbook. The same runbook exported twice counts once; two runbooks with one id are an error.
 */
export async function loadRunbooks(specs: readonly string[], cwd: string): Promise<Runbook[]> {
  if (specs.length === 0) {
    throw new UsageError(
      'No runbook modules given: pass --runbooks <module> (a file like ./runbooks.ts or a package like @aiwebtest/runbook-examples), or set RUNBOOK_MODULES.',
    );
  }
  const byId = new Map<string, { runbook: Runbook; spec: string }>();
  for (const spec of specs) {
    const module = await importSpec(spec, cwd);
    for (const runbook of runbooksOf(module, spec)) {
      const seen = byId.get(runbook.id);
      if (seen && seen.runbook !== runbook) {
        const where = seen.spec === spec ? `twice in ${spec}` : `in ${seen.spec} and in ${spec}`;
        throw new UsageError(
          `Two different runbooks have the id "${runbook.id}" (${where}); ids must be unique.`,
        );
      }
      byId.set(runbook.id, { runbook, spec });
    }
  }
  if (byId.size === 0) {
    throw new UsageError(
      `No runbooks found in ${specs.join(', ')}: a module must export \`runbooks\` (an array), a default array, or runbooks made with defineRunbook().`,
    );
  }
  return [...byId.values()].map((e) => e.runbook);
}

async function importSpec(spec: string, cwd: string): Promise<Record<string, unknown>> {
  const isPath = spec.startsWith('.') || isAbsolute(spec);
  let url: string;
  if (isPath) {
    url = pathToFileURL(resolve(cwd, spec)).href;
  } else {
    try {
      url = pathToFileURL(createRequire(join(cwd, 'package.json')).resolve(spec)).href;
    } catch {
      url = spec; // e.g. a package that exports only an `import` condition: let Node's ESM resolver try
    }
  }
  try {
    return (await import(/* @vite-ignore */ url)) as Record<string, unknown>;
  } catch (e) {
    const hint = isPath
      ? `is the path right (relative to ${cwd})?`
      : `is the package installed where ${cwd} can resolve it?`;
    throw new UsageError(
      `Cannot load runbook module "${spec}": ${(e as Error)?.message ?? String(e)} (${hint})`,
    );
  }
}

function runbooksOf(module: Record<string, unknown>, spec: string): Runbook[] {
  const found: Runbook[] = [];
  const take = (value: unknown, name: string) => {
    if (isRunbook(value)) found.push(value);
    else if (Array.isArray(value)) {
      for (const [i, item] of value.entries()) {
        if (!isRunbook(item)) {
          throw new UsageError(
            `${spec}: export "${name}"[${i}] is not a runbook; build each with defineRunbook().`,
          );
        }
        found.push(item);
      }
    } else if (name === 'runbooks') {
      throw new UsageError(`${spec}: export "runbooks" must be an array of runbooks.`);
    }
  };
  for (const [name, value] of Object.entries(module)) {
    if (name === 'runbooks') take(value, name);
    else if (name === 'default' && isPlainObject(value))
      found.push(...runbooksOf(value, spec)); // CommonJS
    else if (name === 'default' || isRunbook(value)) take(value, name);
  }
  return found;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !isRunbook(value);
}
