/**
 * The lab's Prometheus and Alertmanager: real Debian programs on the templates in `prometheus/`, so that
 * an incident injected in the lab fires the manual's alert, and the alert reaches the runbook service.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ChildService, startChildService } from './child-service';

/** Debian's programs (`scripts/services.sh` installs them); override for another layout. */
export const PROMETHEUS_BIN = process.env.AIWEBTEST_PROMETHEUS_BIN ?? '/usr/bin/prometheus';
export const ALERTMANAGER_BIN = process.env.AIWEBTEST_ALERTMANAGER_BIN ?? '/usr/bin/prometheus-alertmanager';

/** A file of this package (`prometheus/aiwebtest-rules.yml`), from src/ in tests or dist/ once built. */
export function packageFile(relative: string): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, relative);
    if (existsSync(join(dir, 'package.json')) && existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`${relative} not found above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

/** Fills `${NAME}` placeholders; a placeholder without a value is an error, not an empty string. */
export function renderTemplate(text: string, values: Record<string, string>): string {
  return text.replace(/\$\{([A-Z_]+)\}/g, (_, name: string) => {
    const value = values[name];
    if (value === undefined) throw new Error(`no value for the template placeholder \${${name}}`);
    return value;
  });
}

const hostPort = (url: string) => new URL(url).host;

export interface LabPrometheusOptions {
  dir: string;
  port: number;
  /** The lab exporter's base URL (`/metrics`). */
  exporterUrl: string;
  backendUrl: string;
  alertmanagerUrl: string;
}

export interface LabObservability {
  url: string;
  stop(): Promise<void>;
}

/** Prometheus scraping the lab and evaluating the manual's alert rules every 5 s. */
export async function startLabPrometheus(o: LabPrometheusOptions): Promise<LabObservability> {
  const dir = join(o.dir, 'prometheus');
  await mkdir(join(dir, 'data'), { recursive: true });
  const rulesFile = join(dir, 'aiwebtest-rules.yml');
  await writeFile(rulesFile, await readFile(packageFile('prometheus/aiwebtest-rules.yml'), 'utf8'));
  const config = join(dir, 'prometheus.yml');
  await writeFile(
    config,
    renderTemplate(await readFile(packageFile('prometheus/prometheus-lab.yml'), 'utf8'), {
      AIWEBTEST_LAB_EXPORTER: hostPort(o.exporterUrl),
      AIWEBTEST_BACKEND: hostPort(o.backendUrl),
      AIWEBTEST_ALERTMANAGER: hostPort(o.alertmanagerUrl),
      AIWEBTEST_RULES_FILE: rulesFile,
    }),
  );
  const url = `http://127.0.0.1:${o.port}`;
  const service: ChildService = await startChildService({
    name: 'prometheus',
    command: PROMETHEUS_BIN,
    args: [
      `--config.file=${config}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${o.port}`,
      '--storage.tsdb.retention.time=1d',
      '--log.level=warn',
    ],
    readyUrl: `${url}/-/ready`,
    logFile: join(dir, 'prometheus.log'),
  });
  return { url, stop: () => service.stop() };
}

export interface LabAlertmanagerOptions {
  dir: string;
  port: number;
  /** The runbook service's base URL. */
  serviceUrl: string;
  /** A file holding the service's Alertmanager token (read by Alertmanager on every notification). */
  tokenFile: string;
}

/** Alertmanager sending every alert to the runbook service's webhook. */
export async function startLabAlertmanager(o: LabAlertmanagerOptions): Promise<LabObservability> {
  const dir = join(o.dir, 'alertmanager');
  await mkdir(join(dir, 'data'), { recursive: true });
  const config = join(dir, 'alertmanager.yml');
  await writeFile(
    config,
    renderTemplate(await readFile(packageFile('prometheus/alertmanager-lab.yml'), 'utf8'), {
      RUNBOOK_SERVICE_URL: o.serviceUrl.replace(/\/+$/, ''),
      RUNBOOK_ALERTMANAGER_TOKEN_FILE: o.tokenFile,
    }),
  );
  const url = `http://127.0.0.1:${o.port}`;
  const service = await startChildService({
    name: 'alertmanager',
    command: ALERTMANAGER_BIN,
    args: [
      `--config.file=${config}`,
      `--storage.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${o.port}`,
      // A lab is one instance: no gossip port to collide with another lab or a system Alertmanager.
      '--cluster.listen-address=',
      '--log.level=warn',
    ],
    readyUrl: `${url}/-/ready`,
    logFile: join(dir, 'alertmanager.log'),
  });
  return { url, stop: () => service.stop() };
}
