/**
 * Where the AI-Web-Test platform is: the one place the pack's runbooks learn their cluster, database, Redis,
 * backend, Selenium Grid and Prometheus. In production it comes from environment variables (a Secret and a
 * ConfigMap on the runbook service's Deployment); against the local lab, from the `lab.json` the running lab
 * writes. Runbooks ask for it when a run starts, so `runbook list` works without any of it.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type Kubernetes, kubernetes } from '@aiwebtest/runbooks/kubernetes';
import { type Postgres, pgbouncer, postgres } from '@aiwebtest/runbooks/postgres';
import { type RedisRunbooks, redis } from '@aiwebtest/runbooks/redis';
import { z } from 'zod';

/** An http(s):// URL (an outside input the runbooks fetch). */
export const HttpUrl = z
  .url({ protocol: /^https?$/, error: 'expected an http(s):// URL' })
  // fetch refuses such a URL and its error repeats it, password included, into findings and logs.
  .refine(
    (url) => !/^[a-z]+:\/\/[^/?#]*@/i.test(url),
    'credentials in the URL are not accepted (user:password@)',
  );
const PostgresUrl = z.string().regex(/^postgres(ql)?:\/\//, 'expected a postgres:// connection URL');
const PgBouncerAdminUrl = z
  .string()
  .regex(/^postgres(ql)?:\/\/[^/]*\/pgbouncer(\?.*)?$/, 'expected postgres://user@host:port/pgbouncer');
const RedisUrl = z.string().regex(/^rediss?:\/\/\S+$/, 'expected a redis:// URL');

/** The platform's namespace (a Kubernetes namespace name), as the environment and every runbook input take it. */
export const PlatformNamespace = z
  .string()
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'expected a Kubernetes namespace name')
  .default('aiwebtest');

/** The AI-Web-Test platform the pack's runbooks work on. */
export const AiWebTestEnvironment = z.strictObject({
  /** The platform's namespace; the only one the runbooks' Kubernetes actions may change. @default "aiwebtest" */
  namespace: PlatformNamespace,
  /** Path of the kubeconfig file. @default `$KUBECONFIG`, `~/.kube/config` or the in-cluster account */
  kubeconfig: z.string().min(1).optional(),
  /** The kubeconfig context the runbooks are meant for: every Kubernetes step refuses any other. */
  kubeContext: z.string().min(1),
  /** The application database, the way the backend reaches it (through PgBouncer). */
  databaseUrl: PostgresUrl,
  /** PgBouncer's admin console. */
  pgbouncerAdminUrl: PgBouncerAdminUrl,
  /** The platform's Redis (agent caches, request queue, breaker control). */
  redisUrl: RedisUrl,
  /** The backend's base URL (`/api/v1/health`, `/metrics`). */
  backendUrl: HttpUrl,
  /** The Selenium Grid hub (`/status`). */
  seleniumUrl: HttpUrl,
  /** The OpenRouter API the backend calls, up to `/api/v1` (runbook 6 probes its `/health`). */
  openRouterUrl: HttpUrl.default('https://openrouter.ai/api/v1'),
  /** Prometheus, for the metric checks; without it those steps report `unknown`. */
  prometheusUrl: HttpUrl.optional(),
  /** The backend's service name in breaker control (Redis), as its replicas register. @default "aiwebtest-backend" */
  breakerService: z.string().min(1).default('aiwebtest-backend'),
  /** The Redis key prefix of the backend's breaker control. @default the SDK's */
  breakerPrefix: z.string().min(1).optional(),
  /** Disaster recovery (runbook 13): the platform's manifests as files, applied in name order. */
  manifestsDir: z.string().min(1).optional(),
  /** Disaster recovery: the PostgreSQL base backup (a plain `pg_basebackup` directory). */
  postgresBackupDir: z.string().min(1).optional(),
  /** Disaster recovery: the directory WAL archive the server's `archive_command` fills. */
  postgresWalArchiveDir: z.string().min(1).optional(),
  /** Disaster recovery: where restored data directories are created (the `postgres` user must enter it). */
  postgresRestoreDir: z.string().min(1).optional(),
  /** Disaster recovery: PgBouncer's ini file (its `[databases]` entry is pointed at a restored server). */
  pgbouncerConfig: z.string().min(1).optional(),
  /** Disaster recovery: the latest Redis RDB snapshot kept off the server. */
  redisSnapshot: z.string().min(1).optional(),
  /** Vault (runbook 12 rotates secrets in its KV v2 mount `secret`); without it the rotation step is skipped. */
  vaultUrl: HttpUrl.optional(),
  /** The Vault token (`X-Vault-Token`); a secret: never shown. */
  vaultToken: z.string().min(1).optional(),
  /** PagerDuty Events API base URL (`/v2/enqueue`): where the service pages on-call. */
  pagerDutyUrl: HttpUrl.optional(),
  /** The Slack incoming webhook of #incidents; a secret (the URL is the credential). */
  slackWebhookUrl: HttpUrl.optional(),
  /** The status page API base URL (Atlassian Statuspage v1). */
  statusPageUrl: HttpUrl.optional(),
  /** MLflow's tracking server (runbooks 10–11: the model registry). */
  mlflowUrl: HttpUrl.optional(),
  /** Airflow's API server, Airflow 3 (`/api/v2`): the retraining DAG. */
  airflowUrl: HttpUrl.optional(),
  /** The Airflow user the runbooks trigger DAG runs as. */
  airflowUser: z.string().min(1).optional(),
  /** That user's password; a secret: never shown. */
  airflowPassword: z.string().min(1).optional(),
});
export type AiWebTestEnvironment = z.output<typeof AiWebTestEnvironment>;
export type AiWebTestEnvironmentInput = z.input<typeof AiWebTestEnvironment>;

/** Each field's environment variable. */
export const ENVIRONMENT_VARIABLES = {
  namespace: 'AIWEBTEST_NAMESPACE',
  kubeconfig: 'KUBECONFIG',
  kubeContext: 'AIWEBTEST_KUBE_CONTEXT',
  databaseUrl: 'AIWEBTEST_DATABASE_URL',
  pgbouncerAdminUrl: 'AIWEBTEST_PGBOUNCER_ADMIN_URL',
  redisUrl: 'AIWEBTEST_REDIS_URL',
  backendUrl: 'AIWEBTEST_BACKEND_URL',
  seleniumUrl: 'AIWEBTEST_SELENIUM_URL',
  openRouterUrl: 'AIWEBTEST_OPENROUTER_URL',
  prometheusUrl: 'PROMETHEUS_URL',
  breakerService: 'AIWEBTEST_BREAKER_SERVICE',
  breakerPrefix: 'AIWEBTEST_BREAKER_PREFIX',
  manifestsDir: 'AIWEBTEST_MANIFESTS_DIR',
  postgresBackupDir: 'AIWEBTEST_POSTGRES_BACKUP_DIR',
  postgresWalArchiveDir: 'AIWEBTEST_POSTGRES_WAL_ARCHIVE_DIR',
  postgresRestoreDir: 'AIWEBTEST_POSTGRES_RESTORE_DIR',
  pgbouncerConfig: 'AIWEBTEST_PGBOUNCER_CONFIG',
  redisSnapshot: 'AIWEBTEST_REDIS_SNAPSHOT',
  vaultUrl: 'VAULT_ADDR',
  vaultToken: 'VAULT_TOKEN',
  pagerDutyUrl: 'PAGERDUTY_EVENTS_URL',
  slackWebhookUrl: 'SLACK_WEBHOOK_URL',
  statusPageUrl: 'STATUSPAGE_URL',
  mlflowUrl: 'MLFLOW_URL',
  airflowUrl: 'AIRFLOW_URL',
  airflowUser: 'AIRFLOW_USERNAME',
  airflowPassword: 'AIRFLOW_PASSWORD',
} as const satisfies Record<keyof AiWebTestEnvironment, string>;

/** The lab directory's variable; the running lab writes `lab.json` there. */
export const LAB_DIR_VARIABLE = 'AIWEBTEST_LAB_DIR';
/** The lab directory when {@link LAB_DIR_VARIABLE} is unset, relative to the working directory. */
export const DEFAULT_LAB_DIR = '.runbook/lab';
/** The file in the lab directory that describes the running lab as an {@link AiWebTestEnvironment}. */
export const LAB_ENVIRONMENT_FILE = 'lab.json';

/** The environment is missing or invalid; the message names each bad field and where it came from. */
export class EnvironmentError extends Error {
  readonly code = 'AIWEBTEST_ENVIRONMENT';
  constructor(message: string) {
    super(message);
    this.name = 'EnvironmentError';
  }
}

/**
 * Reads the environment: the lab's `lab.json` when a lab directory holds one (`$AIWEBTEST_LAB_DIR`, else
 * `.runbook/lab`), with every variable of {@link ENVIRONMENT_VARIABLES} that is set taking precedence.
 * Throws an {@link EnvironmentError} naming each missing or invalid field and its variable.
 */
export function readEnvironment(
  env: Record<string, string | undefined> = process.env,
  cwd: string = process.cwd(),
): AiWebTestEnvironment {
  const labFile = join(resolve(cwd, env[LAB_DIR_VARIABLE] || DEFAULT_LAB_DIR), LAB_ENVIRONMENT_FILE);
  let fromLab: Record<string, unknown> = {};
  if (existsSync(labFile)) {
    try {
      fromLab = z.record(z.string(), z.unknown()).parse(JSON.parse(readFileSync(labFile, 'utf8')));
    } catch (e) {
      throw new EnvironmentError(
        `${labFile} is not a JSON object (${(e as Error).message}); restart the lab (aiwebtest-lab up) to rewrite it.`,
      );
    }
  }
  const merged: Record<string, unknown> = { ...fromLab };
  for (const [field, variable] of Object.entries(ENVIRONMENT_VARIABLES)) {
    const value = env[variable];
    if (value !== undefined && value !== '') merged[field] = value;
  }
  const parsed = AiWebTestEnvironment.safeParse(merged);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => {
    const field = String(issue.path[0] ?? '');
    const variable = ENVIRONMENT_VARIABLES[field as keyof typeof ENVIRONMENT_VARIABLES];
    const where = variable ? `${field} (${variable})` : field || 'lab.json';
    return `${where}: ${issue.message}`;
  });
  throw new EnvironmentError(
    `The AI-Web-Test environment is incomplete: ${problems.join('; ')}. Start the lab (aiwebtest-lab up) or set the variables.`,
  );
}

/** The platform's clients, as the pack's runbooks use them. */
export interface AiWebTest {
  env: AiWebTestEnvironment;
  k8s: Kubernetes;
  db: Postgres;
  pgbouncer: ReturnType<typeof pgbouncer>;
  redis: RedisRunbooks;
  close(): Promise<void>;
}

/** How a runbook gets the platform: called when a run starts; the result may be shared between runs. */
export type ConnectAiWebTest = () => AiWebTest;

/** Opens clients for an environment. Nothing connects until a step uses it. */
export function connectAiWebTest(input: AiWebTestEnvironmentInput): AiWebTest {
  const env = AiWebTestEnvironment.parse(input);
  const kubeConfig = env.kubeconfig ? readFileSync(env.kubeconfig, 'utf8') : undefined;
  const k8s = kubernetes({
    ...(kubeConfig ? { kubeConfig } : {}),
    expectedContext: env.kubeContext,
    namespaces: [env.namespace],
  });
  const db = postgres({ url: env.databaseUrl, name: 'aiwebtest' });
  const bouncer = pgbouncer({ url: env.pgbouncerAdminUrl, name: 'aiwebtest' });
  const cache = redis({ url: env.redisUrl });
  return {
    env,
    k8s,
    db,
    pgbouncer: bouncer,
    redis: cache,
    async close() {
      // The PgBouncer console opens a connection per call; only the pools need closing.
      await Promise.allSettled([db.db.close(), cache.close()]);
    },
  };
}

let shared: { key: string; platform: AiWebTest } | undefined;

/**
 * The default {@link ConnectAiWebTest}: reads the environment at each run start and reuses the clients while
 * it is unchanged (a long-running service keeps one set of pools; a restarted lab gets new ones).
 */
export const connectFromEnvironment: ConnectAiWebTest = () => {
  const env = readEnvironment();
  const key = JSON.stringify(env);
  if (shared?.key !== key) {
    const previous = shared?.platform;
    shared = { key, platform: connectAiWebTest(env) };
    void previous?.close();
  }
  return shared.platform;
};

/** Options of every runbook factory of the pack (`createAgentFailureRunbook(options)` and the others). */
export interface PackRunbookOptions {
  /** Where the platform is. @default {@link connectFromEnvironment} (env vars or the running lab's lab.json) */
  connect?: ConnectAiWebTest;
}

/** The factory's way to the platform: `options.connect`, else {@link connectFromEnvironment}. */
export function connectionOf(options: PackRunbookOptions): ConnectAiWebTest {
  return options.connect ?? connectFromEnvironment;
}
