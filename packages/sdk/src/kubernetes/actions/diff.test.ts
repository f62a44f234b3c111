import { describe, expect, it } from 'vitest';
import { diffJson } from './diff';

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
    expect(diffJson(env('a'), env('b'), '')).toEqual([
      { field: 'env[name=DB_PASSWORD].value', before: '[REDACTED]', after: '[REDACTED]' },
      { field: 'env[name=LEVEL].value', before: 'a', after: 'b' },
    ]);
    expect(
      diffJson({ data: { url: 'a' } }, { data: { url: 'b' } }, '', { secret: (k) => k[0] === 'data' }),
    ).toEqual([{ field: 'data.url', before: '[REDACTED]', after: '[REDACTED]' }]);
  });
});
