/**
 * The local AI-Web-Test: the platform on the Kubernetes simulator, the application database behind a real
 * PgBouncer, real Redis, the OpenRouter and Ollama doubles, a Selenium Grid double and the sample backend,
 * wired so that what a runbook does to the simulated cluster has its real effect.
 */
import { chmod, mkdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseOptions } from '@aiwebtest/runbooks';
import {
  DEPLOYMENTS,
  type KubernetesSimulator,
  type OllamaDouble,
  type OpenRouterDouble,
  STATEFULSETS,
  startKubernetesSimulator,
  startOllamaDouble,
  startOpenRouterDouble,
} from '@aiwebtest/runbooks/testing';
import { Redis } from 'ioredis';
import pg from 'pg';
import { z } from 'zod';
import type { AiWebTestEnvironment } from '../aiwebtest/environment';
import { LAB_ENVIRONMENT_FILE } from '../aiwebtest/environment';
import { type Backend, type BackendOptionsInput, startBackend } from './backend';
import { LabDatabaseName, PostgresUrl, prepareLabDatabase } from './database/lab-database';
import { type LabPgBouncer, startLabPgBouncer } from './database/pgbouncer';
import {
  type LabDisasterRecovery,
  startLabDisasterRecovery,
  writePlatformManifests,
} from './dr/disaster-recovery';
import { startPostgresService } from './dr/postgres-service';
import { type LabBridge, startBridge } from './lab-bridge';
import type { LabParts } from './lab-parts';
import { LAB_AIRFLOW_USER, type LabMl, startLabMl } from './ml/lab-ml';
import { startLabNotifications } from './notify/lab-notify';
import { backendEnvDefaults, PLATFORM_NAMESPACE, platformManifests } from './platform/manifests';
import { type SeleniumGridDouble, startSeleniumGridDouble } from './platform/selenium-grid';
import { writePrivateFile } from './private-file';
import { startLabVault } from './security/lab-vault';

/** The kubeconfig context of the lab's cluster; the pack's runbooks refuse any other. */
export const LAB_KUBE_CONTEXT = 'aiwebtest-lab';
/** The OpenRouter key the lab's backend uses with the double (not a secret: the double accepts only it). */
const LAB_OPENROUTER_KEY = 'sk-or-lab-key';

/** How to start the lab. */
export const LabOptions = z.strictObject({
  /** Where the lab keeps its files (lab.json, kubeconfig.yaml, PgBouncer's ini and log). */
  dir: z.string().min(1),
  /** A PostgreSQL superuser connection, used to create the application database. */
  adminUrl: PostgresUrl.default('postgres://postgres@127.0.0.1:5432/postgres'),
  /** The application database. @default "aiwebtest_lab" */
  database: LabDatabaseName.default('aiwebtest_lab'),
  /** Drop and re-seed the application database, and empty the lab's Redis database, first. @default false */
  resetDatabase: z.boolean().default(false),
  /**
   * The platform's Redis: agent caches, the backend's queue and breaker control. The lab uses a database
   * index of its own (`/3`) so that clearing the agent cache never touches anything else on the server.
   * @default "redis://127.0.0.1:6379/3"
   */
  redisUrl: z
    .string()
    .regex(/^redis:\/\/[^/]+\/\d{1,2}$/, 'expected redis://host:port/<db index>')
    .default('redis://127.0.0.1:6379/3'),
  /** The simulator's API server port; 0 picks a free one. @default 0 */
  kubernetesPort: z.number().int().min(0).max(65_535).default(0),
  /** The backend's port; 0 picks a free one. @default 0 */
  backendPort: z.number().int().min(0).max(65_535).default(0),
  /** How quickly simulated pods start and become ready. @default 500ms each */
  podStartDelay: z.string().default('500ms'),
  podReadinessDelay: z.string().default('500ms'),
  /** The simulated kubelet's back-off between crashes of a crash-looping container. @default 200ms */
  podCrashBackoff: z.string().default('200ms'),
  /** How often simulated pod metrics (`kubectl top`) refresh. @default 1s */
  metricsInterval: z.string().default('1s'),
  /** The backend's breaker, retry and timeout settings (tests make its breaker quick to open and to probe). */
  backend: z
    .custom<Pick<BackendOptionsInput, 'breaker' | 'retry' | 'generateTimeoutMs'>>(
      (v) => typeof v === 'object' && v !== null,
      'expected an object of backend settings',
    )
    .optional(),
  /**
   * Run a PostgreSQL cluster (WAL archiving, a base backup once seeded) and a redis-server (RDB snapshots)
   * of the lab's own instead of `adminUrl` and `redisUrl`, so that they can be lost and restored: the
   * `total-failure` scenario and the `system-failure` runbook need it. Adds about 2 s to the start.
   * @default false
   */
  disasterRecovery: z.boolean().default(false),
});
export type LabOptions = z.input<typeof LabOptions>;

/** The lab, running. */
export interface RunningLab extends LabParts {
  dir: string;
  /** What the pack's runbooks use (also written to `<dir>/lab.json`). */
  env: AiWebTestEnvironment;
  /** The kubeconfig file of the simulated cluster. */
  kubeconfigPath: string;
  /** What the lab's bridge did so far, newest last (restarts it carried out, env it applied, failures). */
  bridgeLog(): readonly string[];
  /** Stops everything the lab started, newest first; the database and Redis keys stay. */
  close(): Promise<void>;
}

/** Waits until every Deployment and StatefulSet reports all its replicas ready: a lab that is up is healthy. */
async function untilPlatformReady(simulator: KubernetesSimulator, namespace: string, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const notReady = [DEPLOYMENTS, STATEFULSETS].flatMap((type) =>
      simulator.store
        .list(type, namespace)
        .items.filter((w) => {
          const desired = (w.spec as { replicas?: number } | undefined)?.replicas ?? 1;
          return ((w.status as { readyReplicas?: number } | undefined)?.readyReplicas ?? 0) < desired;
        })
        .map((w) => w.metadata.name),
    );
    if (notReady.length === 0) return;
    if (Date.now() > deadline)
      throw new Error(
        `the lab's workloads did not become ready within ${timeoutMs} ms: ${notReady.join(', ')}`,
      );
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Writes `<dir>/lab.json`, the environment the pack's runbooks read (user-only: it holds the URLs). */
export async function writeLabEnvironment(dir: string, env: AiWebTestEnvironment): Promise<void> {
  await writePrivateFile(join(dir, LAB_ENVIRONMENT_FILE), `${JSON.stringify(env, null, 2)}\n`);
}

/**
 * Starts the lab. On failure, whatever had started is stopped again before the error is thrown.
 */
export async function startLab(input: LabOptions): Promise<RunningLab> {
  const o = parseOptions('the lab', LabOptions, input);
  const dir = resolve(o.dir);
  await mkdir(dir, { recursive: true });
  // Traversable by others (not listable): PgBouncer runs as the `postgres` user under root and reads its
  // files in <dir>/pgbouncer. The files that matter (lab.json, kubeconfig.yaml) are the owner's only.
  await chmod(dir, 0o711);
  const stack: (() => Promise<unknown> | unknown)[] = [];
  const closeAll = async () => {
    for (const stop of stack.reverse()) {
      try {
        await stop();
      } catch {
        // Stopping continues: one piece that will not stop must not keep the others running.
      }
    }
    stack.length = 0;
  };

  try {
    // The lab's own PostgreSQL and Redis (initdb takes a while) start while the doubles and the cluster do.
    const drStarting = o.disasterRecovery
      ? startLabDisasterRecovery({ dir: join(dir, 'dr'), labDir: dir })
      : undefined;
    drStarting?.catch(() => {});
    stack.push(async () => (await drStarting?.catch(() => undefined))?.close());
    const openRouter: OpenRouterDouble = await startOpenRouterDouble({ keys: [LAB_OPENROUTER_KEY] });
    stack.push(() => openRouter.close());
    const ollama: OllamaDouble = await startOllamaDouble({});
    stack.push(() => ollama.close());
    const vault = await startLabVault(LAB_OPENROUTER_KEY);
    stack.push(() => vault.close());
    const notifications = await startLabNotifications();
    stack.push(() => notifications.close());

    const simulator: KubernetesSimulator = await startKubernetesSimulator({
      port: o.kubernetesPort,
      contextName: LAB_KUBE_CONTEXT,
      namespace: PLATFORM_NAMESPACE,
      cluster: {
        startDelay: o.podStartDelay,
        readinessDelay: o.podReadinessDelay,
        crashBackoff: o.podCrashBackoff,
        metricsInterval: o.metricsInterval,
      },
    });
    stack.push(() => simulator.close());
    const manifestOptions = { ollamaUrl: ollama.url };
    simulator.apply(...platformManifests(manifestOptions));

    const dr: LabDisasterRecovery | undefined = await drStarting;
    const adminUrl = dr?.postgres.adminUrl ?? o.adminUrl;
    const redisUrl = dr?.redis.url ?? o.redisUrl;
    const { url: directUrl } = await prepareLabDatabase({
      adminUrl,
      database: o.database,
      reset: o.resetDatabase,
    });
    // The base backup of the seeded database, taken while the rest starts.
    const backup = dr?.postgres.baseBackup();
    backup?.catch(() => {});
    const admin = new URL(adminUrl);
    const pgbouncer: LabPgBouncer = await startLabPgBouncer({
      postgresHost: admin.hostname,
      postgresPort: Number(admin.port || 5432),
      database: o.database,
      dir: join(dir, 'pgbouncer'),
    });
    stack.push(() => pgbouncer.stop());
    let databaseUrl = directUrl;
    if (dr) {
      // The lab's own clients reach the database where PgBouncer points (a restore moves it).
      dr.service = await startPostgresService({ pgbouncerIni: dr.pgbouncerIni, database: o.database });
      databaseUrl = dr.service.url(o.database);
    }
    const pool = new pg.Pool({ connectionString: databaseUrl, max: 4, application_name: 'aiwebtest-lab' });
    pool.on('error', () => {}); // an idle client losing its server must not end the lab
    stack.push(() => pool.end());

    const redis = new Redis(redisUrl, { maxRetriesPerRequest: 2 });
    redis.on('error', () => {}); // reconnects by itself; health reports the outage
    stack.push(() => redis.quit().catch(() => redis.disconnect()));
    // The Redis database is the lab's own: a reset empties it too, or a breaker an earlier session's runbook
    // forced open (breaker control persists it, as it must in production) would greet the new lab.
    if (o.resetDatabase) await redis.flushdb();

    const grid: SeleniumGridDouble = await startSeleniumGridDouble({
      simulator,
      namespace: PLATFORM_NAMESPACE,
    });
    stack.push(() => grid.close());

    const redisPrefix = 'aiwebtest:lab:';
    const backend: Backend = await startBackend({
      port: o.backendPort,
      databaseUrl: pgbouncer.url(o.database),
      redisUrl,
      redisPrefix,
      openRouterUrl: openRouter.baseUrl,
      apiKey: LAB_OPENROUTER_KEY,
      ollamaUrl: ollama.url,
      env: backendEnvDefaults(manifestOptions),
      ...o.backend,
    });
    stack.push(() => backend.close());

    // The model platform (runbooks 10–11): MLflow and Airflow doubles, predictions and the drift monitor.
    const ml: LabMl = await startLabMl({ pool, simulator, namespace: PLATFORM_NAMESPACE });
    stack.push(() => ml.close());
    const parts: LabParts = {
      namespace: PLATFORM_NAMESPACE,
      simulator,
      pool,
      databaseUrl,
      pgbouncer,
      redis,
      grid,
      openRouter,
      ollama,
      backend,
      ...(dr ? { disasterRecovery: dr } : {}),
      vault,
      notifications,
      ml,
    };
    const bridge: LabBridge = startBridge(parts);
    stack.push(() => bridge.close());
    await simulator.settle({ timeoutMs: 30_000 });
    await untilPlatformReady(simulator, PLATFORM_NAMESPACE);

    const kubeconfigPath = join(dir, 'kubeconfig.yaml');
    await writePrivateFile(kubeconfigPath, simulator.kubeConfigYaml());
    const env: AiWebTestEnvironment = {
      namespace: PLATFORM_NAMESPACE,
      kubeconfig: kubeconfigPath,
      kubeContext: LAB_KUBE_CONTEXT,
      databaseUrl: pgbouncer.url(o.database),
      pgbouncerAdminUrl: pgbouncer.adminUrl,
      redisUrl,
      backendUrl: backend.url,
      seleniumUrl: grid.url,
      openRouterUrl: openRouter.baseUrl,
      breakerService: 'aiwebtest-backend',
      breakerPrefix: `${redisPrefix}breaker`,
      vaultUrl: vault.url,
      vaultToken: vault.token,
      pagerDutyUrl: notifications.pagerDuty.url,
      slackWebhookUrl: notifications.slack.webhookUrl('#incidents'),
      statusPageUrl: notifications.statusPage.url,
      mlflowUrl: ml.mlflow.url,
      airflowUrl: ml.airflow.url,
      airflowUser: LAB_AIRFLOW_USER,
      airflowPassword: ml.airflowPassword,
    };
    if (dr) {
      await backup;
      await dr.redis.snapshot();
      await writePlatformManifests(dr.manifestsDir, manifestOptions);
      Object.assign(env, {
        manifestsDir: dr.manifestsDir,
        postgresBackupDir: dr.postgres.backupDir,
        postgresWalArchiveDir: dr.postgres.archiveDir,
        postgresRestoreDir: dr.postgres.restoreDir,
        pgbouncerConfig: dr.pgbouncerIni,
        redisSnapshot: dr.redis.snapshotPath,
      });
    }
    await writeLabEnvironment(dir, env);
    // A stale lab.json would send runbooks to ports nobody listens on once the lab is gone.
    stack.push(() => rm(join(dir, LAB_ENVIRONMENT_FILE), { force: true }));

    return {
      ...parts,
      dir,
      env,
      kubeconfigPath,
      bridgeLog: () => bridge.log(),
      close: closeAll,
    };
  } catch (e) {
    await closeAll();
    throw e;
  }
}
