import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  type FormField,
  flattenFields,
  initialValues,
  schemaToFields,
  serviceIssuesToErrors,
  toInput,
} from './json-schema-form';

// The schemas are written by zod exactly as the service writes a runbook's input schema (views.ts).
const jsonSchema = (schema: z.ZodType) =>
  z.toJSONSchema(schema, { target: 'draft-2020-12', io: 'input', unrepresentable: 'any' });

const input = z.object({
  namespace: z
    .string()
    .min(2)
    .max(8)
    .regex(/^[a-z]+$/)
    .describe('Kubernetes namespace'),
  replicas: z.number().int().min(1).max(10).default(3),
  ratio: z.number().positive().optional(),
  dryRun: z.boolean().default(false),
  level: z.enum(['low', 'high']),
  agents: z
    .array(z.string().regex(/^[a-z-]+$/))
    .max(2)
    .default([]),
  target: z.object({ cluster: z.string(), zone: z.number().optional() }).optional(),
  either: z.union([z.number(), z.string()]).optional(),
  maybe: z.string().nullable().optional(),
  pairs: z.array(z.object({ k: z.string() })).optional(),
});
const fields = schemaToFields(jsonSchema(input));
const byName = (name: string) => flattenFields(fields).find((f) => f.name === name) as FormField;

describe('schemaToFields', () => {
  it('maps each property to a field of its kind with its constraints', () => {
    expect(fields.map((f) => [f.name, f.kind, f.required])).toEqual([
      ['namespace', 'string', true],
      ['replicas', 'integer', false],
      ['ratio', 'number', false],
      ['dryRun', 'boolean', false],
      ['level', 'enum', true],
      ['agents', 'tags', false],
      ['target', 'object', false],
      ['either', 'union', false],
      ['maybe', 'string', false],
      ['pairs', 'json', false],
    ]);
    expect(byName('namespace')).toMatchObject({
      description: 'Kubernetes namespace',
      minLength: 2,
      maxLength: 8,
      pattern: '^[a-z]+$',
    });
    expect(byName('replicas')).toMatchObject({ minimum: 1, maximum: 10, default: 3 });
    expect(byName('ratio')).toMatchObject({ exclusiveMinimum: 0 });
    expect(byName('level')).toMatchObject({ options: ['low', 'high'] });
    expect(byName('agents')).toMatchObject({ maxItems: 2, itemPattern: '^[a-z-]+$' });
    expect(byName('either')).toMatchObject({ types: ['number', 'string'] });
    expect((byName('either') as { note: string }).note).toMatch(/number or string/);
  });

  it('nests object properties under dotted names, with their own required list', () => {
    expect(flattenFields(fields).filter((f) => f.name.startsWith('target.'))).toMatchObject([
      { key: 'cluster', name: 'target.cluster', kind: 'string', required: true },
      { key: 'zone', name: 'target.zone', kind: 'number', required: false },
    ]);
  });

  it('reads anyOf of simple types as a union and anything else as JSON; a non-object schema has no fields', () => {
    const [simple, complex] = schemaToFields({
      type: 'object',
      properties: {
        a: { anyOf: [{ type: 'string' }, { type: 'boolean' }] },
        b: { anyOf: [{ type: 'string' }, { type: 'object', properties: {} }] },
      },
    });
    expect(simple).toMatchObject({ kind: 'union', types: ['string', 'boolean'] });
    expect(complex).toMatchObject({ kind: 'json' });
    expect(schemaToFields('nope')).toEqual([]);
    expect(schemaToFields(null)).toEqual([]);
  });
});

describe('initialValues and toInput', () => {
  it('starts from the defaults and builds the input the service parses', () => {
    const values = initialValues(fields);
    expect(values).toMatchObject({ replicas: '3', dryRun: false, agents: [], namespace: '' });
    const { input: built, errors } = toInput(fields, {
      ...values,
      namespace: 'prod',
      level: 'high',
      ratio: '0.5',
      agents: ['a-b'],
      'target.cluster': 'eu',
      either: '42',
      pairs: '[{"k":"v"}]',
    });
    expect(errors).toEqual({});
    expect(built).toEqual({
      namespace: 'prod',
      replicas: 3,
      ratio: 0.5,
      dryRun: false,
      level: 'high',
      agents: ['a-b'],
      target: { cluster: 'eu' },
      either: 42,
      pairs: [{ k: 'v' }],
    });
    // What the form builds is what the runbook's own schema accepts.
    expect(input.safeParse(built).success).toBe(true);
  });

  it('leaves empty optional fields and untouched optional objects out', () => {
    const { input: built, errors } = toInput(fields, {
      ...initialValues(fields),
      namespace: 'prod',
      level: 'low',
    });
    expect(errors).toEqual({});
    expect(Object.keys(built).sort()).toEqual(['agents', 'dryRun', 'level', 'namespace', 'replicas']);
  });

  it('names the field in each problem and reports every problem at once', () => {
    const { errors } = toInput(fields, {
      ...initialValues(fields),
      namespace: 'Prod!',
      replicas: '2.5',
      ratio: '0',
      agents: ['ok', 'Bad', 'x'],
      'target.zone': '1',
      pairs: '{',
    });
    expect(errors).toEqual({
      namespace: 'namespace must match the pattern ^[a-z]+$.',
      replicas: 'replicas must be a whole number.',
      ratio: 'ratio must be greater than 0.',
      level: 'level is required.',
      agents: 'agents takes at most 2 entries.',
      'target.cluster': 'target.cluster is required.',
      pairs: 'pairs must be valid JSON.',
    });
    expect(toInput(fields, { ...initialValues(fields), namespace: 'a', level: 'low' }).errors).toEqual({
      namespace: 'namespace must be at least 2 characters.',
    });
    expect(
      toInput(fields, { ...initialValues(fields), namespace: 'abc', level: 'mid', replicas: '11' }).errors,
    ).toEqual({
      level: 'level must be one of low, high.',
      replicas: 'replicas must be at most 10.',
    });
    expect(
      toInput(fields, { ...initialValues(fields), namespace: 'abc', level: 'low', agents: ['Bad'] }).errors,
    ).toEqual({ agents: 'agents: "Bad" must match the pattern ^[a-z-]+$.' });
    expect(
      toInput(fields, { ...initialValues(fields), namespace: 'abc', level: 'low', replicas: 'x' }).errors,
    ).toEqual({ replicas: 'replicas must be a number.' });
  });
});

describe('serviceIssuesToErrors', () => {
  it("puts the service's issues on the deepest field their path names, the rest on the form", () => {
    const errors = serviceIssuesToErrors(fields, [
      { path: 'input.namespace', message: 'Too small' },
      { path: 'input.agents[1]', message: 'Invalid string' },
      { path: 'input.target.cluster', message: 'Required' },
      { path: 'input.target.cluster', message: 'Also bad' },
      { path: 'input.nope', message: 'unknown field' },
      { path: 'context.source', message: 'refused' },
      { path: 'input', message: 'expected object' },
      { message: 'no path' },
      'not an issue',
    ]);
    expect(errors).toEqual({
      namespace: 'Too small',
      agents: 'Invalid string',
      'target.cluster': 'Required Also bad',
      '': 'input.nope: unknown field context.source: refused input: expected object no path',
    });
  });

  it("reads the engine's input-relative paths and a details object with issues", () => {
    expect(serviceIssuesToErrors(fields, { issues: [{ path: 'replicas', message: 'Too big' }] })).toEqual({
      replicas: 'Too big',
    });
    expect(serviceIssuesToErrors(fields, null)).toEqual({});
  });
});
