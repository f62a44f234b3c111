import { createHash, randomBytes } from 'node:crypto';
import { z } from 'zod';
import { NonRetriableError } from '../core/errors';
import { finding } from '../core/finding';
import { parseOptions } from '../core/parse-options';
import { REDACTED, REDACTED_NEW_VALUE } from '../core/redact';
import { type Action, defineAction } from '../core/step';
import { SecretPath, type VaultKv } from './vault';

/** Makes the new value of a secret; called once per apply, its result never stored or shown. */
export type SecretGenerator = () => string | Promise<string>;

/** Options of {@link rotateSecret}. */
export const RotateSecretOptions = z.object({
  /** The secret's path under the mount, e.g. `"api/openrouter"` (the manual's `secret/api/openrouter`). */
  path: SecretPath,
  /** The member of the secret's data to replace; the others are kept as they are. @default "api_key" */
  key: z
    .string()
    .regex(/^[A-Za-z0-9_.-]+$/, 'expected a key name such as "api_key"')
    .default('api_key'),
  /**
   * Where the new value comes from: a function (called at apply time, e.g. one that asks the provider for a new
   * key), or the value itself. @default 32 random bytes, base64url
   */
  value: z
    .union([
      z.string().min(1),
      z.custom<SecretGenerator>(
        (v) => typeof v === 'function',
        'expected a string or a function returning one',
      ),
    ])
    .optional(),
});
export type RotateSecretOptions = z.output<typeof RotateSecretOptions>;
export type RotateSecretOptionsInput = z.input<typeof RotateSecretOptions>;

/** What a rotation plan fixes. No value, and no hash of one, is in it. */
export type RotateSecretParams = {
  mount: string;
  path: string;
  key: string;
  /** The version read at plan time: the write's check-and-set, and what revert restores. */
  previousVersion: number;
};

/** What a rotation wrote. */
export type RotateSecretData = {
  version: number;
  /**
   * SHA-256 of `"<key>:<version>:<value>"` (salted by key and version, so two secrets with one value differ),
   * for verify to check the value in place without keeping it.
   */
  digest: string;
};

const KIND = 'vault.rotate-secret';

/**
 * Rotates one member of a KV v2 secret (the manual's `vault write secret/api/openrouter api_key=<NEW_KEY>`),
 * safely against concurrent writers:
 *
 * - **plan** reads the current version and the metadata; it shows `version: N → N+1` and the member as
 *   `[REDACTED] → [REDACTED: new value]`. Refused when the secret does not exist or lacks the member.
 * - **apply** generates the value, writes the data (other members unchanged) with `options.cas = N`: if anyone
 *   wrote meanwhile, Vault refuses ("check-and-set parameter did not match the current version") and nothing changes.
 * - **verify** reads the current version back: it must be the one written, holding the new value (compared by
 *   digest, never by printing it).
 * - **revert** writes version N's data again as a new version, with cas = the version the rotation wrote: refused
 *   (`STALE_REVERT`, nothing changed) when anyone wrote since, so a later rotation is never undone.
 *
 * Risk `high` (clients holding the old value stop working until they reload it), not destructive.
 */
export function rotateSecret(
  vault: VaultKv,
  options: RotateSecretOptionsInput,
): Action<RotateSecretParams, RotateSecretData> {
  const o = parseOptions(KIND, RotateSecretOptions, options);
  const target = vault.ref(o.path);
  const label = `${vault.mount}/${o.path}`;
  return defineAction<RotateSecretParams, RotateSecretData>({
    kind: KIND,
    target,
    risk: 'high',
    destructive: false,
    description: `Rotate ${o.key} of Vault secret ${label}`,

    async plan(ctx) {
      const current = await vault.read(o.path, { signal: ctx.signal });
      if (!current) {
        throw new NonRetriableError(
          `Vault has no secret ${label} to rotate (or its current version is deleted). Check the path.`,
          {
            code: 'VAULT_NO_SECRET',
          },
        );
      }
      if (!(o.key in current.data)) {
        throw new NonRetriableError(
          `Vault secret ${label} has no member "${o.key}" (it has: ${Object.keys(current.data).join(', ') || 'none'}). Fix the \`key\` option.`,
          { code: 'VAULT_NO_KEY' },
        );
      }
      return {
        summary: `Rotate ${o.key} of ${label}: write version ${current.version + 1} with check-and-set ${current.version}; version ${current.version} stays for rollback`,
        changes: [
          { target, field: 'version', before: current.version, after: current.version + 1 },
          { target, field: `data.${o.key}`, before: REDACTED, after: REDACTED_NEW_VALUE },
        ],
        params: { mount: vault.mount, path: o.path, key: o.key, previousVersion: current.version },
      };
    },

    async apply(ctx, plan) {
      const p = plan.params;
      const previous = await vault.read(p.path, { version: p.previousVersion, signal: ctx.signal });
      if (!previous) {
        throw new NonRetriableError(
          `Version ${p.previousVersion} of ${label} is gone since the plan. Plan again.`,
          {
            code: 'STALE_PLAN',
          },
        );
      }
      const value = await newValue(o.value);
      const version = await vault.write(p.path, { ...previous.data, [p.key]: value }, p.previousVersion, {
        signal: ctx.signal,
      });
      ctx.log(`wrote version ${version} of ${label}`);
      return { version, digest: digestOf(p.key, version, value) };
    },

    async verify(ctx, applied) {
      const p = applied.plan.params;
      const current = await vault.read(p.path, { signal: ctx.signal });
      const data = { currentVersion: current?.version ?? null, previousVersion: p.previousVersion };
      if (!current) return finding('fail', `${label} has no current version after the rotation`, data);
      if (!applied.data) {
        // Recovered after a crash: the value is unknown, only the version can be checked.
        return current.version > p.previousVersion
          ? finding('ok', `${label} is at version ${current.version} (was ${p.previousVersion})`, data)
          : finding('fail', `${label} is still at version ${current.version}`, data);
      }
      if (current.version !== applied.data.version) {
        return finding(
          'fail',
          `${label} is at version ${current.version}, not the ${applied.data.version} written: another writer followed`,
          data,
        );
      }
      const value = current.data[p.key];
      if (typeof value !== 'string' || digestOf(p.key, current.version, value) !== applied.data.digest) {
        return finding('fail', `${label} version ${current.version} does not hold the new ${p.key}`, data);
      }
      return finding(
        'ok',
        `${label} is at version ${current.version} with the new ${p.key}; version ${p.previousVersion} kept for rollback`,
        data,
      );
    },

    async revert(ctx, applied) {
      const p = applied.plan.params;
      const previous = await vault.read(p.path, { version: p.previousVersion, signal: ctx.signal });
      if (!previous) {
        throw new NonRetriableError(
          `Cannot roll ${label} back: version ${p.previousVersion} is no longer kept (max_versions). Restore the old ${p.key} by hand.`,
          { code: 'VAULT_REVERT_IMPOSSIBLE' },
        );
      }
      // Only the version this rotation wrote may be replaced: a write since (a person's second rotation, say)
      // holds a newer value, and writing the old data over it would bring the compromised one back. A write with
      // cas = previousVersion makes previousVersion + 1 (KV v2 counts up by one), known even after a crash.
      const created = applied.data?.version ?? p.previousVersion + 1;
      const current = await vault.metadata(p.path, { signal: ctx.signal });
      if (current?.currentVersion !== created) {
        throw new NonRetriableError(
          `Cannot roll ${label} back: it is at version ${current?.currentVersion ?? 'none'}, not the ${created} this rotation wrote, so someone wrote it since. Nothing was changed; check who did, and restore version ${p.previousVersion} by hand only if that write must go too.`,
          { code: 'STALE_REVERT' },
        );
      }
      const version = await vault.write(p.path, previous.data, created, { signal: ctx.signal });
      ctx.log(`restored version ${p.previousVersion} of ${label} as version ${version}`);
    },
  });
}

async function newValue(source: RotateSecretOptions['value']): Promise<string> {
  if (source === undefined) return randomBytes(32).toString('base64url');
  const value = typeof source === 'string' ? source : await source();
  if (typeof value !== 'string' || value.length === 0) {
    throw new NonRetriableError('The secret generator returned no value (expected a non-empty string).', {
      code: 'VAULT_NO_VALUE',
    });
  }
  return value;
}

function digestOf(key: string, version: number, value: string): string {
  return createHash('sha256').update(`${key}:${version}:${value}`).digest('hex');
}
