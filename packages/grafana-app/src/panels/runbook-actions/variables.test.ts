import { describe, expect, it } from 'vitest';
import { editableActions, normalizeOptions } from './options';
import { type Interpolate, resolveInput, variablesIn } from './variables';

/**
 * Grafana's interpolation as its template service behaves: `$x`, `${x}`, `${x:format}` and `[[x]]` of
 * defined variables are replaced, multi-value variables as `{a,b}` by default and as a JSON list with the
 * `json` format; a variable the dashboard does not define is left exactly as written.
 */
function dashboard(vars: Record<string, string | string[]>): Interpolate {
  return (text, _scoped, format) =>
    text.replace(/\$(\w+)|\$\{(\w+)(?::(\w+))?\}|\[\[(\w+)\]\]/g, (whole, a, b, inlineFormat, c) => {
      const name = a ?? b ?? c;
      const value = vars[name];
      if (value === undefined) return whole;
      const f = inlineFormat ?? format;
      if (Array.isArray(value)) return f === 'json' ? JSON.stringify(value) : `{${value.join(',')}}`;
      return f === 'json' ? JSON.stringify(value) : value;
    });
}

const SCHEMA = {
  type: 'object',
  properties: {
    agent: { type: 'string', enum: ['generation-agent', 'requirements-agent'] },
    replicas: { type: 'integer', minimum: 1 },
    ratio: { type: 'number' },
    debug: { type: 'boolean' },
    hosts: { type: 'array', items: { type: 'string' } },
    labels: { type: 'object' },
    note: { anyOf: [{ type: 'string' }, { type: 'null' }] },
  },
};

describe('variablesIn', () => {
  it('finds every syntax of Grafana variables once, in order', () => {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's ${name} variable syntax, not a JS template
    expect(variablesIn('$agent on ${host} and [[env]] ${agent:csv} [[env:raw]] ${a.b}')).toEqual([
      'agent',
      'host',
      'env',
      'a',
    ]);
    expect(variablesIn('plain literal, 5 $ dollars')).toEqual([]);
  });
});

describe('resolveInput', () => {
  const vars = dashboard({ agent: 'generation-agent', n: '3', on: 'true', hosts: ['h1', 'h2'], empty: '' });

  it('replaces dashboard variables and converts each value to the type of its schema field', () => {
    const r = resolveInput(
      [
        { field: 'agent', value: '$agent' },
        // biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's ${name} variable syntax, not a JS template
        { field: 'replicas', value: '${n}' },
        { field: 'ratio', value: '0.5' },
        { field: 'debug', value: '[[on]]' },
        { field: 'hosts', value: '$hosts' },
        { field: 'labels', value: '{"team":"qa"}' },
        { field: 'note', value: 'scaled for $agent' },
      ],
      SCHEMA,
      vars,
    );
    expect(r.problems).toEqual([]);
    expect(r.input).toEqual({
      agent: 'generation-agent',
      replicas: 3,
      ratio: 0.5,
      debug: true,
      hosts: ['h1', 'h2'],
      labels: { team: 'qa' },
      note: 'scaled for generation-agent',
    });
    expect(r.variables).toEqual({ agent: 'generation-agent', n: '3', on: 'true', hosts: '{h1,h2}' });
  });

  it('leaves out empty values so the runbook defaults apply', () => {
    const r = resolveInput(
      [
        { field: 'replicas', value: '$empty' },
        { field: 'agent', value: '' },
      ],
      SCHEMA,
      vars,
    );
    expect(r).toEqual({ input: {}, problems: [], variables: { empty: '' } });
  });

  it('refuses a variable the dashboard does not define instead of sending "$name" as a literal', () => {
    const r = resolveInput(
      [
        { field: 'agent', value: '$agnet' },
        { field: 'replicas', value: '2' },
      ],
      SCHEMA,
      vars,
    );
    expect(r.problems).toEqual(['agent: the dashboard has no variable $agnet']);
    expect(r.input).toEqual({ replicas: 2 });
  });

  it('names the field and what was expected when a value does not fit its type', () => {
    const r = resolveInput(
      [
        { field: 'replicas', value: 'many' },
        { field: 'ratio', value: '1.5' },
        { field: 'debug', value: 'yes' },
        { field: 'labels', value: '[1]' },
      ],
      { ...SCHEMA, properties: { ...SCHEMA.properties, ratio: { type: 'integer' } } },
      vars,
    );
    expect(r.problems).toEqual([
      'replicas: expected a number, got "many"',
      'ratio: expected a whole number, got "1.5"',
      'debug: expected true or false, got "yes"',
      'labels: expected a JSON object, got "[1]"',
    ]);
    expect(r.input).toEqual({});
  });

  it('sends text as is when the schema is unknown, and reads comma lists for array fields', () => {
    expect(resolveInput([{ field: 'x', value: '$n' }], undefined, vars).input).toEqual({ x: '3' });
    expect(resolveInput([{ field: 'hosts', value: 'a, b,,c' }], SCHEMA, vars).input).toEqual({
      hosts: ['a', 'b', 'c'],
    });
  });
});

describe('normalizeOptions', () => {
  it('keeps valid actions with defaults and names what is wrong with the others', () => {
    const { actions, problems } = normalizeOptions({
      actions: [
        { runbookId: 'scale-agent', mode: 'execute', inputs: [{ field: 'agent', value: '$agent' }] },
        { runbookId: ' inspect-latency ', label: ' Latency ', inputs: { service: 'api', n: 3 } },
        { runbookId: 'x', mode: 'apply' },
        { mode: 'plan' },
        'button',
        { runbookId: 'y', inputs: [{ field: 'a b', value: '1' }] },
        { runbookId: 'z', inputs: [{ field: 'a', value: {} }] },
        {
          runbookId: 'w',
          inputs: [
            { field: 'a', value: '1' },
            { field: 'a', value: '2' },
          ],
        },
      ],
    });
    expect(actions).toEqual([
      {
        label: 'scale-agent',
        runbookId: 'scale-agent',
        mode: 'execute',
        inputs: [{ field: 'agent', value: '$agent' }],
      },
      {
        label: 'Latency',
        runbookId: 'inspect-latency',
        mode: 'diagnose',
        inputs: [
          { field: 'service', value: 'api' },
          { field: 'n', value: '3' },
        ],
      },
    ]);
    expect(problems.map((p) => p.path)).toEqual([
      'actions[2].mode',
      'actions[3].runbookId',
      'actions[4]',
      'actions[5].inputs',
      'actions[6].inputs',
      'actions[7].inputs',
    ]);
    expect(problems[0]?.message).toBe('expected one of diagnose, plan, execute, got "apply"');
    expect(problems[5]?.message).toBe('field "a" is mapped twice');
  });

  it('accepts missing options and refuses a non-list', () => {
    expect(normalizeOptions({})).toEqual({ actions: [], problems: [] });
    expect(normalizeOptions(undefined)).toEqual({ actions: [], problems: [] });
    expect(normalizeOptions({ actions: 'x' }).problems).toEqual([
      { index: -1, path: 'actions', message: 'expected a list of actions' },
    ]);
  });

  it('editableActions keeps actions still being written', () => {
    expect(
      editableActions([{ runbookId: '', mode: 'bogus', inputs: [{ field: '', value: 1 }] }, null]),
    ).toEqual([{ label: '', runbookId: '', mode: 'diagnose', inputs: [{ field: '', value: '1' }] }]);
    expect(editableActions(undefined)).toEqual([]);
  });
});
