import { describe, expect, it } from 'vitest';
import { diffJson, maskSecretEnv, REDACTED_NEW_VALUE } from './diff';

describe('diffJson', () => {
  it('walks maps and named lists, quotes odd keys, and leaves equal fields out', () => {
    const before = {
      metadata: { annotations: { 'a/b': '1', same: 'x' } },
      spec: {
        containers: [
          { name: 'app', image: 'x:1', args: ['--a'] },
          { name: 'side', image: 'y:1' },
        ],
      },
    };
    const after = {
      metadata: { annotations: { 'a/b': '2', same: 'x' } },
      spec: {
        containers: [
          { name: 'app', image: 'x:2', args: ['--b'] },
          { name: 'new', image: 'z:1' },
        ],
      },
    };
    expect(diffJson(before, after, 'spec.template')).toEqual([
      { field: 'spec.template.metadata.annotations["a/b"]', before: '1', after: '2' },
      { field: 'spec.template.spec.containers[name=app].args', before: ['--a'], after: ['--b'] },
      { field: 'spec.template.spec.containers[name=app].image', before: 'x:1', after: 'x:2' },
      {
        field: 'spec.template.spec.containers[name=side]',
        before: { name: 'side', image: 'y:1' },
        after: null,
      },
      {
        field: 'spec.template.spec.containers[name=new]',
        before: null,
        after: { name: 'new', image: 'z:1' },
      },
    ]);
    expect(diffJson(before, structuredClone(before), '')).toEqual([]);
  });

  it('redacts values under secret-looking names, and what the caller marks secret', () => {
    const env = (v: string) => ({
      env: [
        { name: 'DB_PASSWORD', value: v },
        { name: 'LEVEL', value: v },
      ],
    });
    // A changed secret is still a difference, and its `after` differs from its `before` (crash recovery
    // compares them).
    expect(diffJson(env('a'), env('b'), '')).toEqual([
      { field: 'env[name=DB_PASSWORD].value', before: '[REDACTED]', after: REDACTED_NEW_VALUE },
      { field: 'env[name=LEVEL].value', before: 'a', after: 'b' },
    ]);
    expect(
      diffJson({ data: { url: 'a' } }, { data: { url: 'b' } }, '', { secret: (k) => k[0] === 'data' }),
    ).toEqual([{ field: 'data.url', before: '[REDACTED]', after: REDACTED_NEW_VALUE }]);
    expect(diffJson({ token: 'a' }, {}, '')).toEqual([{ field: 'token', before: '[REDACTED]', after: null }]);
    expect(diffJson({}, { token: 'a' }, '')).toEqual([{ field: 'token', before: null, after: '[REDACTED]' }]);
  });

  it('masks secret-named env values in a list or object only one side has', () => {
    const env = [
      { name: 'DB_PASSWORD', value: 'hunter2' },
      { name: 'API_TOKEN', valueFrom: { secretKeyRef: { name: 'keys', key: 'api' } } },
      { name: 'LEVEL', value: 'debug' },
    ];
    const masked = [
      { name: 'DB_PASSWORD', value: '[REDACTED]' },
      { name: 'API_TOKEN', valueFrom: { secretKeyRef: { name: 'keys', key: 'api' } } },
      { name: 'LEVEL', value: 'debug' },
    ];
    const app = (withEnv: boolean) => ({ containers: [{ name: 'app', ...(withEnv ? { env } : {}) }] });
    // The env list only one side has is shown whole: a list, not a field per variable.
    expect(diffJson(app(false), app(true), 'spec')).toEqual([
      { field: 'spec.containers[name=app].env', before: null, after: masked },
    ]);
    expect(diffJson(app(true), app(false), 'spec')).toEqual([
      { field: 'spec.containers[name=app].env', before: masked, after: null },
    ]);
    // A whole container added, and a list compared whole (duplicate names), are masked too.
    expect(diffJson({ containers: [] }, app(true), '')).toEqual([
      { field: 'containers', before: [], after: [{ name: 'app', env: masked }] },
    ]);
    const twice = [...env, { name: 'DB_PASSWORD', value: 'hunter3' }];
    const diff = diffJson({ env: [] }, { env: twice }, '');
    expect(JSON.stringify(diff)).not.toMatch(/hunter/);
    expect(diff[0]?.after).toHaveLength(4);
  });

  it('maskSecretEnv masks only non-empty literal values of secret-named entries of `env` lists', () => {
    const value = {
      env: [
        { name: 'A_SECRET', value: 's' },
        { name: 'B_PASSWORD', value: '' },
        { name: 'C', value: 'c' },
      ],
      other: [{ name: 'D_PASSWORD', value: 'd' }],
      nested: { initContainers: [{ name: 'init', env: [{ name: 'E_TOKEN', value: 'e' }] }] },
    };
    const before = structuredClone(value);
    expect(maskSecretEnv(value)).toEqual({
      env: [
        { name: 'A_SECRET', value: '[REDACTED]' },
        { name: 'B_PASSWORD', value: '' },
        { name: 'C', value: 'c' },
      ],
      other: [{ name: 'D_PASSWORD', value: 'd' }],
      nested: { initContainers: [{ name: 'init', env: [{ name: 'E_TOKEN', value: '[REDACTED]' }] }] },
    });
    expect(value).toEqual(before);
  });
});
