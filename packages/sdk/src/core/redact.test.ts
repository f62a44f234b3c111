import { describe, expect, it } from 'vitest';
import { createRedactor, REDACTED } from './redact';

describe('redaction', () => {
  const { redact, redactText } = createRedactor(['vault-root-0042']);

  it('replaces values of secret-named keys at any depth, and leaves look-alikes', () => {
    const out = redact({
      password: 'x1',
      nested: { githubToken: 'abc', DB_PASSWORD: 'y', 'x-api-key': 'k', maxTokens: 4096, tokenCount: 3 },
      list: [{ secret: 's' }],
    });
    expect(out).toEqual({
      password: REDACTED,
      nested: {
        githubToken: REDACTED,
        DB_PASSWORD: REDACTED,
        'x-api-key': REDACTED,
        maxTokens: 4096,
        tokenCount: 3,
      },
      list: [{ secret: REDACTED }],
    });
  });

  it('scrubs secrets inside text', () => {
    expect(redactText('postgres://app:pa55@db:5432/x')).toBe(`postgres://app:${REDACTED}@db:5432/x`);
    expect(redactText('Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.x')).not.toContain('eyJhbGci');
    expect(redactText('password=hunter2 user=bob')).toBe(`password=${REDACTED} user=bob`);
    expect(redactText('key sk-or-v1-abcdefghijklmnopqrstu used')).toBe(`key ${REDACTED} used`);
    expect(redactText('root token is vault-root-0042.')).toBe(`root token is ${REDACTED}.`);
    expect(redactText('3 pods ready')).toBe('3 pods ready');
  });

  it('copies shared sub-objects and cuts cycles without throwing', () => {
    const shared = { a: 1 };
    const cyclic: Record<string, unknown> = { shared, again: shared };
    cyclic.self = cyclic;
    expect(redact(cyclic)).toEqual({ shared: { a: 1 }, again: { a: 1 }, self: '[Circular]' });
  });
});
