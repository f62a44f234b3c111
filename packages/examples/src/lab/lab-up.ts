/**
 * `aiwebtest-lab up`: the whole local incident environment in one process. The lab and its activity, the
 * control API with the lab exporter, the runbook service with this pack (embedded store, routing the
 * manual's alerts), Alertmanager sending to it, and Prometheus scraping the lab and evaluating the rules.
 * An incident injected with `aiwebtest-lab chaos` fires its alert, and the service runs its runbook.
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { parseOptions } from '@aiwebtest/runbooks';
import { z } from 'zod';
import { type Activity, startActivity } from './activity';
import { PortInUseError, startChildService } from './child-service';
import { freePort } from './database/pgbouncer';
import { type LabControl, startLabControl } from './lab-control';
import { labNotifyVariables } from './notify/lab-notify';
import { packageFile, startLabAlertmanager, startLabPrometheus } from './observability';
import { writePrivateFile } from './private-file';
import { LabOptions, type RunningLab, startLab, writeLabEnvironment } from './start-lab';

/** Where `up` writes what its clients need: the control API's URL and the service's. */
export const LAB_CONTROL_FILE = 'control.json';

export const LabUpOptions = LabOptions.extend({
  /** The control API and lab exporter. @default 9400 */
  controlPort: z.number().int().min(0).max(65_535).default(9400),
  /** The runbook service. @default 8080 */
  servicePort: z.number().int().min(0).max(65_535).default(8080),
  /** @default 9090 */
  prometheusPort: z.number().int().min(0).max(65_535).default(9090),
  /** @default 9093 */
  alertmanagerPort: z.number().int().min(0).max(65_535).default(9093),
  /** Start Prometheus, Alertmanager and the runbook service, not only the lab. @default true */
  serve: z.boolean().default(true),
  /**
   * The lab's own PostgreSQL and Redis, restorable (see LabOptions): on in `up`, so that `aiwebtest-lab chaos
   * total-failure` works there. @default true
   */
  disasterRecovery: z.boolean().default(true),
});
export type LabUpOptions = z.input<typeof LabUpOptions>;

/** What `up` tells its clients (`<dir>/control.json`). */
export const LabControlFile = z.object({
  controlUrl: z.string(),
  serviceUrl: z.string().optional(),
  prometheusUrl: z.string().optional(),
  alertmanagerUrl: z.string().optional(),
  /** Files holding the service's tokens: an on-call engineer and a second person who approves. */
  tokenFiles: z.object({ oncall: z.string(), approver: z.string() }).optional(),
});
export type LabControlFile = z.infer<typeof LabControlFile>;

export interface LabUp {
  lab: RunningLab;
  control: LabControl;
  file: LabControlFile;
  stop(): Promise<void>;
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** Makes the service's tokens: each in a file only the user reads; the service gets their hashes only. */
async function writeTokens(dir: string) {
  const tokensDir = join(dir, 'tokens');
  await mkdir(tokensDir, { recursive: true, mode: 0o700 });
  await chmod(tokensDir, 0o700); // an existing directory keeps its mode otherwise
  const tokens = {
    oncall: { role: 'admin' },
    approver: { role: 'admin' },
    alertmanager: { role: 'editor', alertmanager: true },
  } as const;
  const entries = [];
  const files: Record<string, string> = {};
  for (const [name, spec] of Object.entries(tokens)) {
    const token = randomBytes(24).toString('base64url');
    const file = join(tokensDir, name);
    await writePrivateFile(file, token);
    files[name] = file;
    entries.push({ name, sha256: sha256(token), ...spec });
  }
  const tokensFile = join(tokensDir, 'tokens.json');
  await writePrivateFile(tokensFile, `${JSON.stringify({ tokens: entries }, null, 2)}\n`);
  return { tokensFile, files };
}

/** The `runbook` CLI of the SDK this package depends on. */
function runbookCli(): string {
  const sdkPackage = createRequire(import.meta.url).resolve('@aiwebtest/runbooks/package.json');
  return join(dirname(sdkPackage), 'dist', 'cli', 'main.js');
}

export async function labUp(
  input: LabUpOptions,
  progress: (line: string) => void = () => {},
): Promise<LabUp> {
  const o = parseOptions('aiwebtest-lab up', LabUpOptions, input);
  const dir = resolve(o.dir);
  const stack: (() => Promise<unknown>)[] = [];
  const stop = async () => {
    for (const s of stack.reverse()) await s().catch(() => {});
    stack.length = 0;
  };
  try {
    progress('starting the lab: Kubernetes simulator, database behind PgBouncer, Redis, doubles, backend');
    const { controlPort, serve, ...rest } = o;
    const { servicePort: sp, prometheusPort: pp, alertmanagerPort: ap, ...labOptions } = rest;
    const lab = await startLab({ ...labOptions, dir });
    stack.push(() => lab.close());
    const activity: Activity = startActivity(lab);
    stack.push(() => activity.stop());
    const control = await startLabControl(lab, { port: controlPort });
    stack.push(() => control.close());
    const file: LabControlFile = { controlUrl: control.url };

    if (serve) {
      const { tokensFile, files } = await writeTokens(dir);
      const { port: servicePort, value: service } = await onPort(sp, (port) => {
        progress(`starting the runbook service on http://127.0.0.1:${port}`);
        return startChildService({
          name: 'runbook service',
          command: process.execPath,
          args: [
            runbookCli(),
            'serve',
            '--port',
            String(port),
            '--runbooks',
            packageFile('dist/index.js'),
            '--config',
            packageFile('prometheus/service-lab.yaml'),
            '--tokens-file',
            tokensFile,
            '--data-dir',
            join(dir, 'store'),
          ],
          env: { ...process.env, AIWEBTEST_LAB_DIR: dir, ...labNotifyVariables(lab.env) },
          readyUrl: `http://127.0.0.1:${port}/readyz`,
          isOurs: async (response) =>
            ((await response.json().catch(() => null)) as { status?: unknown } | null)?.status === 'ok',
          logFile: join(dir, 'runbook-service.log'),
          readyTimeoutMs: 60_000,
        });
      });
      stack.push(() => service.stop());
      const serviceUrl = `http://127.0.0.1:${servicePort}`;
      const { value: alertmanager } = await onPort(ap, (port) => {
        progress(`starting Alertmanager on 127.0.0.1:${port}`);
        return startLabAlertmanager({ dir, port, serviceUrl, tokenFile: files.alertmanager as string });
      });
      stack.push(() => alertmanager.stop());
      const { value: prometheus } = await onPort(pp, (port) => {
        progress(`starting Prometheus on 127.0.0.1:${port}`);
        return startLabPrometheus({
          dir,
          port,
          exporterUrl: control.url,
          backendUrl: lab.env.backendUrl,
          alertmanagerUrl: alertmanager.url,
        });
      });
      stack.push(() => prometheus.stop());
      lab.env.prometheusUrl = prometheus.url;
      await writeLabEnvironment(dir, lab.env);
      Object.assign(file, {
        serviceUrl,
        prometheusUrl: prometheus.url,
        alertmanagerUrl: alertmanager.url,
        tokenFiles: { oncall: files.oncall as string, approver: files.approver as string },
      });
    }
    await writePrivateFile(join(dir, LAB_CONTROL_FILE), `${JSON.stringify(file, null, 2)}\n`);
    return { lab, control, file, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/**
 * Starts a program on `requested`, or (0) on a port picked free just before: the programs' addresses go into
 * each other's configs, so the lab picks them rather than the programs. Another process binding port 0 can be
 * given the same port in between; the program then cannot listen, and a new port is picked (three tries).
 */
async function onPort<T>(
  requested: number,
  start: (port: number) => Promise<T>,
): Promise<{ port: number; value: T }> {
  for (let attempt = 1; ; attempt++) {
    const port = requested === 0 ? await freePort() : requested;
    try {
      return { port, value: await start(port) };
    } catch (e) {
      if (requested !== 0 || attempt === 3 || !(e instanceof PortInUseError)) throw e;
    }
  }
}
