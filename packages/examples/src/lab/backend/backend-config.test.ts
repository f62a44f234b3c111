import { isInputValidationError } from '@aiwebtest/runbooks';
import { describe, expect, it } from 'vitest';
import { parseBackendEnv, parseBackendOptions } from './backend-config';

describe('parseBackendEnv', () => {
  it('gives the Deployment defaults of LAB.md for an empty env', () => {
    expect(parseBackendEnv({})).toEqual({
      OPENROUTER_FALLBACK: false,
      OPENROUTER_QUEUE_ENABLED: false,
      OPENROUTER_MAX_REQUESTS_PER_MINUTE: 50,
      OPENROUTER_CACHE_ENABLED: false,
      OPENROUTER_CACHE_TTL: 300,
      MAX_PARALLEL_TESTS: 2,
      TEST_RESULT_CACHE_ENABLED: false,
      TEST_RESULT_CACHE_TTL: 3600,
      RATE_LIMIT_STRICT: false,
      RATE_LIMIT_GLOBAL: 10,
    });
  });

  it('reads the runbooks’ kubectl set env values', () => {
    const env = parseBackendEnv({
      OPENROUTER_FALLBACK: 'true',
      OLLAMA_URL: 'http://ollama:11434',
      OPENROUTER_QUEUE_ENABLED: 'true',
      OPENROUTER_MAX_REQUESTS_PER_MINUTE: '50',
      OPENROUTER_CACHE_ENABLED: 'true',
      OPENROUTER_CACHE_TTL: '300',
    });
    expect(env).toMatchObject({
      OPENROUTER_FALLBACK: true,
      OLLAMA_URL: 'http://ollama:11434',
      OPENROUTER_QUEUE_ENABLED: true,
      OPENROUTER_CACHE_TTL: 300,
    });
  });

  it.each([
    [{ OPENROUTER_FALLBACK: 'yes' }, 'OPENROUTER_FALLBACK'],
    [{ OPENROUTER_CACHE_TTL: 'five minutes' }, 'OPENROUTER_CACHE_TTL'],
    [{ OPENROUTER_MAX_REQUESTS_PER_MINUTE: '0' }, 'OPENROUTER_MAX_REQUESTS_PER_MINUTE'],
    [{ OLLAMA_URL: 'ftp://ollama' }, 'OLLAMA_URL'],
    [{ OLLAMA_URL: 'http://admin:hunter2@ollama:11434' }, 'OLLAMA_URL'],
    [{ OPENROUTER_FALLBAK: 'true' }, 'OPENROUTER_FALLBAK'],
  ])('refuses %j naming %s', (env, name) => {
    let error: unknown;
    try {
      parseBackendEnv(env);
    } catch (e) {
      error = e;
    }
    expect(isInputValidationError(error)).toBe(true);
    expect((error as Error).message).toContain(`${name}:`);
    expect((error as Error).message).not.toContain('hunter2');
  });
});

describe('parseBackendOptions', () => {
  const base = {
    databaseUrl: 'postgres://postgres@127.0.0.1:5432/test',
    redisUrl: 'redis://127.0.0.1:6379',
    redisPrefix: 'aiwebtest:test:',
    openRouterUrl: 'http://127.0.0.1:1/api/v1',
    ollamaUrl: 'http://127.0.0.1:2',
  };

  it('needs an API key, and names the field without showing keys', () => {
    expect(() => parseBackendOptions(base)).toThrow(/apiKeys: give apiKey or apiKeys/);
    expect(parseBackendOptions({ ...base, apiKey: 'sk-or-v1-x' })).toMatchObject({
      host: '127.0.0.1',
      port: 0,
      serviceName: 'aiwebtest-backend',
      queueMaxLength: 1000,
    });
  });

  it('refuses a Redis prefix that does not end with ":"', () => {
    expect(() => parseBackendOptions({ ...base, apiKey: 'k', redisPrefix: 'lab' })).toThrow(/redisPrefix:/);
  });
});
