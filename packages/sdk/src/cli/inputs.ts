import { readFile } from 'node:fs/promises';
import { extname, resolve } from 'node:path';
import { z } from 'zod';
import type { Runbook } from '../core/runbook';
import { UsageError } from './exit-codes';

type JsonSchema = Record<string, unknown>;

/** A runbook's input schema as JSON Schema (what `describe` shows); `undefined` when zod cannot express it. */
export function inputJsonSchema(runbook: Runbook): JsonSchema | undefined {
  try {
    return z.toJSONSchema(runbook.input, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
  } catch {
    return undefined;
  }
}

/**
 * Builds a run's input from `--input-file` (a JSON object) and `--input key=value` pairs, which override it.
 * Values are parsed as JSON when they parse (`3`, `true`, `["a"]`), else kept as strings — except where the
 * schema expects a string, which keeps `--input version=1.10` a string. Dotted keys (`a.b=1`) nest.
 * The engine validates the result against the schema; this only shapes it.
 */
export async function readRunInput(options: {
  pairs: readonly string[];
  file: string | undefined;
  cwd: string;
  schema: JsonSchema | undefined;
}): Promise<Record<string, unknown>> {
  const input = options.file ? await readInputFile(resolve(options.cwd, options.file), options.file) : {};
  for (const pair of options.pairs) {
    const eq = pair.indexOf('=');
    // Messages show the key only: the value may be a secret typed by mistake.
    if (eq <= 0) throw new UsageError('An --input is not key=value (e.g. --input namespace=aiwebtest).');
    const path = pair.slice(0, eq).split('.');
    for (const segment of path) {
      if (segment === '' || FORBIDDEN_KEYS.has(segment)) {
        throw new UsageError(
          `--input ${pair.slice(0, eq)}=…: "${pair.slice(0, eq)}" is not a valid key path (use a.b.c).`,
        );
      }
    }
    setPath(input, path, parseValue(pair.slice(eq + 1), schemaAt(options.schema, path)));
  }
  return input;
}

const FORBIDDEN_KEYS = new Set(['__proto__', 'prototype', 'constructor']);

async function readInputFile(path: string, given: string): Promise<Record<string, unknown>> {
  const ext = extname(path).toLowerCase();
  if (ext === '.yaml' || ext === '.yml') {
    throw new UsageError(`--input-file ${given}: YAML is not supported; write the input as a JSON object.`);
  }
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new UsageError(
      `--input-file ${given}: cannot read it (${(e as NodeJS.ErrnoException).code ?? String(e)}).`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`--input-file ${given}: not valid JSON (${(e as Error).message}).`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new UsageError(`--input-file ${given}: expected a JSON object of input fields.`);
  }
  return parsed as Record<string, unknown>;
}

function setPath(target: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let node = target;
  for (const [i, key] of path.entries()) {
    if (i === path.length - 1) {
      node[key] = value;
      return;
    }
    const next = Object.hasOwn(node, key) ? node[key] : undefined;
    if (next === undefined) {
      const created: Record<string, unknown> = {};
      node[key] = created;
      node = created;
    } else if (typeof next === 'object' && next !== null && !Array.isArray(next)) {
      node = next as Record<string, unknown>;
    } else {
      throw new UsageError(
        `--input ${path.join('.')}=…: "${path.slice(0, i + 1).join('.')}" already has a value that is not an object.`,
      );
    }
  }
}

function parseValue(raw: string, schema: JsonSchema | undefined): unknown {
  if (schema && expectsString(schema) && raw !== 'null') return raw;
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

/** The schema of the field at `path`, following object properties; `undefined` when unknown. */
function schemaAt(root: JsonSchema | undefined, path: readonly string[]): JsonSchema | undefined {
  let node = root;
  for (const key of path) {
    if (!node) return undefined;
    const branches = [node, ...branchesOf(node)];
    node = branches
      .map((b) => (b.properties as Record<string, JsonSchema> | undefined)?.[key])
      .find((s): s is JsonSchema => s !== undefined);
  }
  return node;
}

function branchesOf(schema: JsonSchema): JsonSchema[] {
  return [...((schema.anyOf as JsonSchema[]) ?? []), ...((schema.oneOf as JsonSchema[]) ?? [])];
}

/** True when every non-null alternative of the schema is a string. */
function expectsString(schema: JsonSchema): boolean {
  const branches = branchesOf(schema);
  if (branches.length > 0) {
    const nonNull = branches.filter((b) => b.type !== 'null');
    return nonNull.length > 0 && nonNull.every(expectsString);
  }
  if (schema.type === 'string') return true;
  if (Array.isArray(schema.enum))
    return schema.enum.length > 0 && schema.enum.every((v) => typeof v === 'string');
  return typeof schema.const === 'string';
}
