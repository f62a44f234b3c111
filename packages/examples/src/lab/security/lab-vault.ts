/** The lab's Vault: the Vault double holding the platform's secrets (runbook 12 rotates `secret/api/openrouter`). */
import { randomBytes } from 'node:crypto';
import { startVaultDouble, type VaultDouble } from '@aiwebtest/runbooks/testing';

/** The path, under the KV v2 mount `secret`, of the OpenRouter API key (the manual's `secret/api/openrouter`). */
export const OPENROUTER_SECRET_PATH = 'api/openrouter';

/** Starts the lab's Vault with the OpenRouter key in it, and a token of its own (written to lab.json only). */
export function startLabVault(openRouterKey: string): Promise<VaultDouble> {
  return startVaultDouble({
    token: `lab-vault-${randomBytes(12).toString('hex')}`,
    secrets: { [OPENROUTER_SECRET_PATH]: { api_key: openRouterKey } },
  });
}
