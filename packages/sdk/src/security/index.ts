/**
 * `@aiwebtest/runbooks/security` — runbook 12 (security incident response) as checks and actions:
 * failed-login bursts and the investigation queries over `audit_logs`, account locks, an IP blocklist in
 * Redis that services enforce, strict rate limiting, secret rotation through Vault KV v2 with check-and-set,
 * and a scan for changed files in containers through the `pods/exec` API (removal is a destructive action).
 * See SECURITY.md.
 *
 * @module \@aiwebtest/runbooks/security
 */

export {
  type BreachScopeData,
  BreachScopeOptions,
  type BreachScopeOptionsInput,
  breachScope,
  type DataAccessData,
  DataAccessOptions,
  type DataAccessOptionsInput,
  dataAccess,
  type FailedLoginBurstsData,
  type FailedLoginBurstsObservation,
  FailedLoginBurstsOptions,
  type FailedLoginBurstsOptionsInput,
  failedLoginBursts,
  type LoginBurst,
  type RecentAuditActivityData,
  type RecentAuditActivityObservation,
  RecentAuditActivityOptions,
  type RecentAuditActivityOptionsInput,
  recentAuditActivity,
} from './audit-checks';
export { type AuditEntry, AuditTables } from './audit-tables';
export {
  BlockIpsOptions,
  type BlockIpsOptionsInput,
  type BlockIpsParams,
  blockIps,
  type PlannedBlock,
} from './block-ips';
export {
  type ChangedFile,
  type ChangedFilesData,
  type ChangedFilesObservation,
  ChangedFilesScanOptions,
  type ChangedFilesScanOptionsInput,
  changedFilesScan,
  RemoveFilesOptions,
  type RemoveFilesOptionsInput,
  type RemoveFilesParams,
  removeFiles,
} from './changed-files';
export {
  type BlocklistHookOptions,
  blocklistHook,
  DEFAULT_BLOCKLIST_KEY,
  type IpBlocklist,
  IpBlocklistOptions,
  type IpBlocklistOptionsInput,
  IpOrCidr,
  ipBlocklist,
  isWideBlock,
  normalizeAddress,
  WIDE_PREFIX,
  WIDEST_PREFIX,
} from './ip-blocklist';
export {
  type AccountBefore,
  LockAccountsOptions,
  type LockAccountsOptionsInput,
  type LockAccountsParams,
  lockAccounts,
} from './lock-accounts';
export {
  connectPodExec,
  type ExecResult,
  PodExec,
  PodExecOptions,
  type PodExecOptionsInput,
} from './pod-exec';
export {
  type RotateSecretData,
  RotateSecretOptions,
  type RotateSecretOptionsInput,
  type RotateSecretParams,
  rotateSecret,
  type SecretGenerator,
} from './rotate-secret';
export {
  StrictRateLimitOptions,
  type StrictRateLimitOptionsInput,
  strictRateLimit,
} from './strict-rate-limit';
export {
  connectVault,
  isVaultError,
  type SecretMetadata,
  SecretPath,
  type SecretVersion,
  VaultError,
  VaultKv,
  VaultOptions,
  type VaultOptionsInput,
} from './vault';
