// The end-to-end runbook of SECURITY.md ("End to end: contain a login attack"), shown there as
// `contain-login-attack.ts`. Everything between the docs markers appears there exactly, except the import lines:
// the docs import from the package, this file from the sources. docs-examples.test.ts runs it through the Engine
// against PostgreSQL, Redis and the Vault double, and fails when the two drift apart.

// docs:begin contain-login-attack.ts
import { z } from 'zod';
import { defineRunbook } from '../../src';
import type { PostgresDatabase } from '../../src/postgres';
import type { RedisInstance } from '../../src/redis';
import { blockIps, failedLoginBursts, lockAccounts, rotateSecret, type VaultKv } from '../../src/security';

/**
 * Runbook 12's containment: find the failed-login bursts, block their addresses for an hour (the engine
 * unblocks them then), lock the accounts that were logged into from them, and rotate the API key they could
 * reach. The connections are parameters so that a test can point the runbook at throwaway ones.
 */
export function containLoginAttack(db: PostgresDatabase, redis: RedisInstance, vault: VaultKv) {
  return defineRunbook({
    id: 'contain-login-attack',
    title: 'Failed-login burst: block, lock, rotate',
    severity: 'P1',
    input: z.object({
      /** How long the addresses stay blocked. */
      blockFor: z.string().default('1h'),
    }),
    async run({ input, step }) {
      const bursts = await step.check(
        'failed-login-bursts',
        failedLoginBursts(db, { window: '10m', threshold: 10 }),
      );
      if (bursts.status === 'ok') return step.done('no failed-login burst');

      await step.act('block-ips', blockIps(redis, { ips: bursts.data.ips, duration: input.blockFor }));
      const compromised = [...new Set(bursts.data.compromised.map((c) => c.username))];
      if (compromised.length === 0)
        return step.done(`blocked ${bursts.data.ips.length} address(es); no account was taken`);

      await step.act(
        'lock-accounts',
        lockAccounts(db, { usernames: compromised, reason: 'Security incident' }),
      );
      // The new key comes from a generator at apply time: it is never in the plan, the log or the store.
      await step.act(
        'rotate-openrouter-key',
        rotateSecret(vault, { path: 'api/openrouter', key: 'api_key' }),
      );
      return step.done(
        `blocked ${bursts.data.ips.join(', ')}; locked ${compromised.join(', ')}; rotated api/openrouter`,
      );
    },
  });
}
// docs:end contain-login-attack.ts
