import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isInputValidationError } from '../../src/core/errors';
import { rotateSecret } from '../../src/security/rotate-secret';
import { connectVault, isVaultError } from '../../src/security/vault';
import { startVaultDouble, type VaultDouble } from '../../src/testing/vault/vault-double';
import { stepContext } from '../support/kubernetes';
import { execute } from './support';

// Vault KV v2 is a test double here (no Vault server can run on this machine): it speaks the real HTTP API, and
// the SDK's client talks to it over real HTTP.

const OLD_KEY = 'sk-or-v1-old-0123456789abcdef0123456789';
let vault: VaultDouble;

beforeAll(async () => {
  vault = await startVaultDouble({
    token: 'root-token',
    secrets: { 'api/openrouter': { api_key: OLD_KEY, model: 'openrouter/auto' } },
  });
});
afterAll(async () => {
  await vault?.close();
});

const client = (token = 'root-token') => connectVault({ url: vault.url, token });

describe('Vault double (KV v2 wire format)', () => {
  it('answers 403 without the right token and reads data with metadata', async () => {
    const denied = await fetch(`${vault.url}/v1/secret/data/api/openrouter`, {
      headers: { 'X-Vault-Token': 'nope' },
    });
    expect(denied.status).toBe(403);
    expect(await denied.json()).toEqual({ errors: ['permission denied'] });
    const ok = await fetch(`${vault.url}/v1/secret/data/api/openrouter`, {
      headers: { 'X-Vault-Token': 'root-token' },
    });
    const body = (await ok.json()) as {
      data: { data: Record<string, string>; metadata: { version: number } };
    };
    expect(body.data.data.model).toBe('openrouter/auto');
    expect(body.data.metadata.version).toBe(1);
    await expect(client('wrong').read('api/openrouter')).rejects.toSatisfy(
      (e: unknown) => isVaultError(e) && e.status === 403 && e.message.includes('permission denied'),
    );
  });

  it("refuses a write whose cas is not the current version, with Vault's own text, and logs no values", async () => {
    vault.write('cas/demo', { password: 'first-value' });
    const kv = client();
    await expect(kv.write('cas/demo', { password: 'second-value' }, 0)).rejects.toSatisfy(
      (e: unknown) =>
        isVaultError(e) &&
        e.status === 400 &&
        e.casMismatch &&
        e.message.includes('check-and-set parameter did not match the current version') &&
        !e.message.includes('second-value'),
    );
    expect(await kv.write('cas/demo', { password: 'second-value' }, 1)).toBe(2);
    expect(vault.read('cas/demo')).toEqual({ password: 'second-value' });
    const meta = await kv.metadata('cas/demo');
    expect(meta).toMatchObject({ currentVersion: 2, readableVersions: [1, 2] });
    expect((await kv.read('cas/demo', { version: 1 }))?.data).toEqual({ password: 'first-value' });
    const writes = vault.requests.filter((r) => r.path === '/v1/secret/data/cas/demo' && r.method === 'POST');
    expect(writes).toEqual([
      {
        method: 'POST',
        path: '/v1/secret/data/cas/demo',
        version: null,
        cas: 0,
        keys: ['password'],
        status: 400,
      },
      {
        method: 'POST',
        path: '/v1/secret/data/cas/demo',
        version: null,
        cas: 1,
        keys: ['password'],
        status: 200,
      },
    ]);
    expect(JSON.stringify(vault.requests)).not.toContain('value');
  });
});

describe('rotateSecret', () => {
  it('writes a new version with cas, verifies it by digest, keeps the old one, and reverts to it', async () => {
    const fresh = 'sk-or-v1-new-fedcba9876543210fedcba9876';
    const action = rotateSecret(client(), { path: 'api/openrouter', key: 'api_key', value: () => fresh });
    const run = await execute(action);
    expect(run.plan.changes).toEqual([
      { target: 'vault:vault/secret/api/openrouter', field: 'version', before: 1, after: 2 },
      {
        target: 'vault:vault/secret/api/openrouter',
        field: 'data.api_key',
        before: '[REDACTED]',
        after: '[REDACTED: new value]',
      },
    ]);
    expect(run.plan.params).toEqual({
      mount: 'secret',
      path: 'api/openrouter',
      key: 'api_key',
      previousVersion: 1,
    });
    expect(run.data.version).toBe(2);
    expect(run.verification).toMatchObject({ status: 'ok' });
    expect(vault.read('api/openrouter')).toEqual({ api_key: fresh, model: 'openrouter/auto' });
    const write = vault.requests.filter((r) => r.method === 'POST' && r.path.endsWith('api/openrouter'));
    expect(write.at(-1)).toMatchObject({ cas: 1, status: 200, keys: ['api_key', 'model'] });

    // Neither value is anywhere a person or the store would see it.
    const shown = JSON.stringify([run.plan, run.data, run.verification, run.logs]);
    expect(shown).not.toContain(fresh);
    expect(shown).not.toContain(OLD_KEY);

    // Another writer after the rotation: verify notices the value is no longer the one written.
    const stale = await action.verify?.(stepContext(), { ...run.applied, data: { ...run.data, version: 1 } });
    expect(stale?.status).toBe('fail');

    await run.revert();
    expect(vault.read('api/openrouter')).toEqual({ api_key: OLD_KEY, model: 'openrouter/auto' });
    expect(vault.versions('api/openrouter').map((v) => v.version)).toEqual([1, 2, 3]);
  });

  it('changes nothing when another writer wrote between plan and apply (cas mismatch)', async () => {
    vault.write('api/race', { api_key: 'race-original-key' });
    const action = rotateSecret(client(), { path: 'api/race' });
    const c = stepContext();
    const draft = await action.plan(c);
    vault.write('api/race', { api_key: 'someone-elses-key' });
    const plan = {
      ...draft,
      action: action.kind,
      target: action.target,
      risk: action.risk,
      destructive: false,
      hash: 'x',
    };
    await expect(action.apply(c, plan)).rejects.toSatisfy(
      (e: unknown) => isVaultError(e) && e.casMismatch && e.message.includes('plan again'),
    );
    expect(vault.read('api/race')).toEqual({ api_key: 'someone-elses-key' });
    expect(vault.versions('api/race')).toHaveLength(2);
  });

  it('does not revert over a write made after the rotation (the compromised key stays out)', async () => {
    vault.write('api/twice', { api_key: 'compromised-key' });
    const first = await execute(rotateSecret(client(), { path: 'api/twice', value: 'first-rotation-key' }));
    expect(first.data.version).toBe(2);
    // A person rotates again by hand after the runbook's rotation.
    vault.write('api/twice', { api_key: 'second-rotation-key' });
    await expect(first.revert()).rejects.toMatchObject({
      code: 'STALE_REVERT',
      message: expect.stringMatching(/at version 3, not the 2 this rotation wrote.*Nothing was changed/),
    });
    expect(vault.read('api/twice')).toEqual({ api_key: 'second-rotation-key' });
    expect(vault.versions('api/twice')).toHaveLength(3);
  });

  it('refuses a missing secret or member, and bad options, by name', async () => {
    await expect(rotateSecret(client(), { path: 'api/none' }).plan(stepContext())).rejects.toMatchObject({
      code: 'VAULT_NO_SECRET',
    });
    await expect(
      rotateSecret(client(), { path: 'api/openrouter', key: 'token' }).plan(stepContext()),
    ).rejects.toThrow(/has no member "token" \(it has: api_key, model\)/);
    expect(() => rotateSecret(client(), { path: '../etc' })).toThrow(
      expect.objectContaining({ message: expect.stringContaining('path') }),
    );
    try {
      rotateSecret(client(), { path: 'a//b' });
      expect.unreachable();
    } catch (e) {
      expect(isInputValidationError(e)).toBe(true);
    }
  });
});
