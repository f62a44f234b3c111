/**
 * The running pieces of the lab, as the lab's own behaviour (activity, metrics, health, chaos) sees them.
 * `startLab` builds them; everything else takes them as they are.
 */
import type {
  KubernetesSimulator,
  OllamaDouble,
  OpenRouterDouble,
  VaultDouble,
} from '@aiwebtest/runbooks/testing';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import type { Backend } from './backend';
import type { LabPgBouncer } from './database/pgbouncer';
import type { LabDisasterRecovery } from './dr/disaster-recovery';
import type { LabMl } from './ml/lab-ml';
import type { LabNotifications } from './notify/lab-notify';
import type { SeleniumGridDouble } from './platform/selenium-grid';

export interface LabParts {
  /** The platform's namespace in the simulator. */
  namespace: string;
  simulator: KubernetesSimulator;
  /** The lab's own pool on the application database, straight to PostgreSQL (not through PgBouncer). */
  pool: pg.Pool;
  /** That database's URL, straight to PostgreSQL. */
  databaseUrl: string;
  pgbouncer: LabPgBouncer;
  /** The lab's own Redis client, on the platform's Redis database. */
  redis: Redis;
  grid: SeleniumGridDouble;
  openRouter: OpenRouterDouble;
  ollama: OllamaDouble;
  /** The backend (the only replica that runs for real; the Deployment's pods stand for it). */
  backend: Backend;
  /** The lab's own PostgreSQL (WAL archive, base backup) and Redis (RDB snapshots): `disasterRecovery: true` only. */
  disasterRecovery?: LabDisasterRecovery;
  /** The platform's Vault (KV v2 `secret`, holding `api/openrouter`): runbook 12 rotates secrets there. */
  vault?: VaultDouble;
  /** The platform's PagerDuty, Slack (#incidents) and status page: where the runbook service notifies. */
  notifications?: LabNotifications;
  /** The model platform (runbooks 10–11): MLflow and Airflow doubles, predictions, the drift monitor. */
  ml?: LabMl;
}
