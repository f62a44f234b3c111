import { describe, expect, it } from 'vitest';
import { canonicalJson } from './json';
import { sealPlan } from './plan';
import { resourceRef } from './resource';

const action = {
  kind: 'k8s.rollout-restart',
  target: resourceRef('k8s', 'aiwebtest', 'deployment', 'x'),
  risk: 'medium' as const,
  destructive: false,
};
const change = { target: action.target, field: 'restartedAt', before: null, after: '2026-01-01T00:00:00Z' };

describe('plans', () => {
  it('hash the same for equal drafts regardless of key order, differently for any change', () => {
    const a = sealPlan(action, { summary: 'restart', changes: [change], params: { a: 1, b: 2 } });
    const b = sealPlan(action, { summary: 'restart it', changes: [change], params: { b: 2, a: 1 } });
    expect(a.hash).toBe(b.hash); // the summary is prose; what will change is what is signed
    expect(
      sealPlan(action, {
        summary: 'restart',
        changes: [{ ...change, after: 'later' }],
        params: { a: 1, b: 2 },
      }).hash,
    ).not.toBe(a.hash);
    expect(
      sealPlan(
        { ...action, destructive: true },
        { summary: 'restart', changes: [change], params: { a: 1, b: 2 } },
      ).hash,
    ).not.toBe(a.hash);
  });
  it('canonical JSON sorts keys and drops undefined', () => {
    expect(canonicalJson({ b: 1, a: { d: undefined, c: [2, { z: 1, y: 2 }] } })).toBe(
      '{"a":{"c":[2,{"y":2,"z":1}]},"b":1}',
    );
  });
  it('resource refs reject ambiguous segments', () => {
    expect(() => resourceRef('k8s', 'a/b')).toThrow(/segment/);
    expect(() => resourceRef('K8S', 'a')).toThrow(/lowercase/);
  });
});
