import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { z } from 'zod';
import { UsageError } from '../../src/cli/exit-codes';
import { readRunInput } from '../../src/cli/inputs';

const schema = z.toJSONSchema(
  z.object({
    name: z.string(),
    version: z.string().optional(),
    count: z.number(),
    mode: z.enum(['fast', 'safe']).nullable(),
    nested: z.object({ label: z.string(), level: z.number() }).optional(),
  }),
) as Record<string, unknown>;

const read = (pairs: string[], file?: string, cwd = tmpdir()) =>
  readRunInput({ pairs, file, cwd, schema: undefined });

describe('--input and --input-file', () => {
  it('parses values as JSON when they parse, else keeps strings', async () => {
    expect(
      await read(['n=3', 'f=1.5', 'b=true', 'z=null', 'a=["x",2]', 'o={"k":1}', 's=hello', 'e=', 'eq=a=b']),
    ).toEqual({
      n: 3,
      f: 1.5,
      b: true,
      z: null,
      a: ['x', 2],
      o: { k: 1 },
      s: 'hello',
      e: '',
      eq: 'a=b',
    });
  });

  it('builds nested objects from dotted keys', async () => {
    expect(await read(['a.b=1', 'a.c.d=x', 'top=2'])).toEqual({ a: { b: 1, c: { d: 'x' } }, top: 2 });
  });

  it('keeps strings where the schema expects a string', async () => {
    const input = await readRunInput({
      pairs: ['name=123', 'version=1.10', 'count=7', 'mode=null', 'nested.label=true', 'nested.level=2'],
      file: undefined,
      cwd: tmpdir(),
      schema,
    });
    expect(input).toEqual({
      name: '123',
      version: '1.10',
      count: 7,
      mode: null,
      nested: { label: 'true', level: 2 },
    });
  });

  it('refuses malformed pairs and conflicting keys', async () => {
    await expect(read(['novalue'])).rejects.toThrow(/An --input is not key=value/);
    // A value is never echoed back: it may be a secret typed in the wrong place.
    await expect(read(['password.=hunter2'])).rejects.toThrow(/^(?!.*hunter2).*not a valid key path/);
    await expect(read(['=3'])).rejects.toBeInstanceOf(UsageError);
    await expect(read(['a..b=1'])).rejects.toThrow(/not a valid key path/);
    await expect(read(['__proto__.polluted=1'])).rejects.toThrow(/not a valid key path/);
    await expect(read(['a=1', 'a.b=2'])).rejects.toThrow(/"a" already has a value that is not an object/);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('reads a JSON file relative to cwd; --input overrides and deep-merges', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'runbook-input-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'in.json'), JSON.stringify({ a: { b: 1, c: 2 }, d: 'x' }));
    expect(await read(['a.b=9', 'e=true'], 'in.json', dir)).toEqual({ a: { b: 9, c: 2 }, d: 'x', e: true });
    writeFileSync(join(dir, 'list.json'), '[1]');
    await expect(read([], 'list.json', dir)).rejects.toThrow(/expected a JSON object/);
    writeFileSync(join(dir, 'bad.json'), '{');
    await expect(read([], 'bad.json', dir)).rejects.toThrow(/not valid JSON/);
    await expect(read([], 'in.yaml', dir)).rejects.toThrow(/YAML is not supported/);
    await expect(read([], 'missing.json', dir)).rejects.toThrow(/cannot read it \(ENOENT\)/);
  });
});
