import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AppsV1Api, CoreV1Api, KubernetesObjectApi } from '@kubernetes/client-node';
import type { Command } from 'commander';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { buildProgram } from '../../src/cli/program';
import { storeLocation } from '../../src/cli/session';
import { checkRoutedRunbooks } from '../../src/server/alert-routing';
import { hashToken } from '../../src/server/identity';
import { ServerOptions } from '../../src/server/options';
import { DEFAULT_SHUTDOWN_GRACE_MS } from '../../src/server/serve';
import { readServiceConfig } from '../../src/server/service-config';
import { TokensFile } from '../../src/server/tokens-file';
import { FINAL_RUN_STATUSES } from '../../src/store/records';
import { type KubernetesSimulator, startKubernetesSimulator } from '../../src/testing/kubernetes/simulator';
import { scaleRunbook, serverFixture } from '../server/server-fixture';
import { POSTGRES_URL } from '../support/stores';
import { kustomizeBuild, type Manifest } from './kustomize';

const REPO = fileURLToPath(new URL('../../../../', import.meta.url));
const KUBERNETES_DIR = join(REPO, 'deploy/kubernetes');
const PROMETHEUS_DIR = join(REPO, 'deploy/prometheus');
/** promtool from the Debian package; a missing binary fails the test rather than skipping it. */
const PROMTOOL = process.env.PROMTOOL ?? '/usr/bin/promtool';
const README = readFileSync(join(KUBERNETES_DIR, 'README.md'), 'utf8');
/** The kinds the SDK's Kubernetes API simulator serves (TESTING.md, "Served kinds only"). */
const SIMULATED_KINDS = new Set(['Namespace', 'ConfigMap', 'Secret', 'Service', 'Deployment', 'StatefulSet']);

const base = kustomizeBuild(join(KUBERNETES_DIR, 'base'));

function one(manifests: Manifest[], kind: string): Manifest {
  const found = manifests.filter((m) => m.kind === kind);
  if (found.length !== 1) throw new Error(`expected one ${kind}, found ${found.length}`);
  return found[0] as Manifest;
}
const deployment = one(base, 'Deployment');
const pod = deployment.spec.template.spec;
const container = pod.containers[0];

/** The secrets the README tells operators to create: `kubectl … create secret generic NAME --from-file=KEY=…`. */
function documentedSecrets(): Map<string, Set<string>> {
  const secrets = new Map<string, Set<string>>();
  for (const m of README.matchAll(
    /kubectl .*create secret generic ([a-z0-9-]+)((?: --from-file=[^=\s]+=\S+)+)/g,
  )) {
    const keys = [...(m[2] ?? '').matchAll(/--from-file=([^=\s]+)=/g)].map((k) => k[1] as string);
    secrets.set(m[1] as string, new Set([...(secrets.get(m[1] as string) ?? []), ...keys]));
  }
  return secrets;
}

/** Every Secret key the pod reads: env `secretKeyRef`s and secret volumes' items. */
function referencedSecrets(): Array<{ name: string; key: string }> {
  const fromEnv = (container.env ?? [])
    .filter((e: Manifest) => e.valueFrom?.secretKeyRef)
    .map((e: Manifest) => ({ name: e.valueFrom.secretKeyRef.name, key: e.valueFrom.secretKeyRef.key }));
  const fromVolumes = (pod.volumes ?? [])
    .filter((v: Manifest) => v.secret)
    .flatMap((v: Manifest) =>
      v.secret.items.map((i: { key: string }) => ({ name: v.secret.secretName, key: i.key })),
    );
  return [...fromEnv, ...fromVolumes];
}

/** The file a volume item lands at in the container: mountPath/item path. */
function mountedFile(volumeSource: 'secret' | 'configMap', name: string): string {
  const volume = pod.volumes.find(
    (v: Manifest) => (volumeSource === 'secret' ? v.secret?.secretName : v.configMap?.name) === name,
  );
  const mount = container.volumeMounts.find((m: { name: string }) => m.name === volume?.name);
  return `${mount?.mountPath}/${volume?.[volumeSource].items[0].path}`;
}

/** Parses the container's command line with the real `runbook` CLI, capturing serve's flags instead of serving. */
async function parseServeArgs(argv: string[]): Promise<Record<string, unknown>> {
  const errors: string[] = [];
  const program = buildProgram({
    io: {
      stdout: { write: () => true },
      stderr: { write: (s: string) => errors.push(s) },
      stdin: process.stdin,
      env: {},
      cwd: REPO,
      isTTY: false,
    },
    exit() {},
  });
  const serve = program.commands.find((c: Command) => c.name() === 'serve');
  if (!serve) throw new Error('the CLI has no serve command');
  let flags: Record<string, unknown> | undefined;
  serve.action((parsed: Record<string, unknown>) => {
    flags = parsed;
  });
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (e) {
    throw new Error(`runbook ${argv.join(' ')}: ${errors.join('') || (e as Error).message}`);
  }
  if (!flags) throw new Error(`runbook ${argv.join(' ')} did not reach the serve command`);
  return flags;
}

describe('deploy/kubernetes/base, as kustomize builds it', () => {
  it('puts every object in namespace aiwebtest with the app label, and ships no Secret', () => {
    expect(base.map((m) => `${m.kind}/${m.metadata.name}`)).toEqual([
      'ServiceAccount/runbook-service',
      'ConfigMap/runbook-service-config',
      'Deployment/runbook-service',
      'Service/runbook-service',
      'PodDisruptionBudget/runbook-service',
    ]);
    for (const m of base) {
      expect(m.metadata.namespace, m.kind).toBe('aiwebtest');
      expect(m.metadata.labels?.['app.kubernetes.io/name'], m.kind).toBe('runbook-service');
    }
    // Not in any built manifest, nor in any YAML file under deploy/kubernetes (even one not listed).
    const yamlFiles = readdirSync(KUBERNETES_DIR, { recursive: true, encoding: 'utf8' }).filter((f) =>
      /\.ya?ml$/.test(f),
    );
    expect(yamlFiles.length).toBeGreaterThanOrEqual(7);
    for (const file of yamlFiles) {
      expect(readFileSync(join(KUBERNETES_DIR, file), 'utf8'), file).not.toMatch(/^kind:\s*Secret\s*$/m);
    }
  });

  it('selects the same pods from the Deployment, the Service and the PodDisruptionBudget', () => {
    const podLabels = deployment.spec.template.metadata.labels;
    expect(deployment.spec.selector.matchLabels).toEqual({ 'app.kubernetes.io/name': 'runbook-service' });
    for (const selector of [
      deployment.spec.selector.matchLabels,
      one(base, 'Service').spec.selector,
      one(base, 'PodDisruptionBudget').spec.selector.matchLabels,
    ]) {
      for (const [k, v] of Object.entries(selector)) expect(podLabels[k]).toBe(v);
    }
    expect(one(base, 'PodDisruptionBudget').spec.minAvailable).toBe(1);
    expect(deployment.spec.replicas).toBe(2);
    expect(deployment.spec.strategy.rollingUpdate.maxUnavailable).toBe(0);
    expect(pod.serviceAccountName).toBe(one(base, 'ServiceAccount').metadata.name);
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(one(base, 'ServiceAccount').automountServiceAccountToken).toBe(false);
  });

  it('runs a command line the real runbook CLI accepts, with the mounted files and the store from the Secret', async () => {
    const sdkPackage = JSON.parse(readFileSync(join(REPO, 'packages/sdk/package.json'), 'utf8'));
    expect(Object.keys(sdkPackage.bin)).toEqual(container.command);
    for (const arg of container.args) expect(typeof arg).toBe('string');
    const flags = await parseServeArgs(container.args);
    expect(flags).toMatchObject({
      host: '0.0.0.0',
      port: 8080,
      tokensFile: mountedFile('secret', 'runbook-tokens'),
      config: mountedFile('configMap', 'runbook-service-config'),
      runbooks: ['@aiwebtest/runbook-examples'],
      json: true,
    });
    expect(flags.tokensFile).toBe('/var/run/secrets/runbook/tokens.json');
    expect(flags.config).toBe('/etc/runbook/service.yaml');
    // A flag the CLI does not know is refused, so the check above can fail.
    await expect(parseServeArgs([...container.args, '--replicas', '2'])).rejects.toThrow(/--replicas/);

    // The store is PostgreSQL: the CLI takes the URL from the environment the Secret fills.
    const env = Object.fromEntries(
      container.env.map((e: Manifest) => [
        e.name,
        e.valueFrom?.secretKeyRef ? 'postgres://from-secret/db' : e.value,
      ]),
    );
    expect(storeLocation(flags, { env, cwd: '/' }).url).toBe('postgres://from-secret/db');
    expect(JSON.stringify(container.args)).not.toContain('postgres://');
  });

  it('carries a service.yaml that the service reads, routing alerts to runbooks of the pack it loads', () => {
    const configMap = one(base, 'ConfigMap');
    const dir = mkdtempSync(join(tmpdir(), 'service-config-'));
    try {
      writeFileSync(join(dir, 'service.yaml'), configMap.data['service.yaml']);
      const config = readServiceConfig(join(dir, 'service.yaml'));
      expect(config.alerts?.routes.map((r) => [r.name, r.runbook, r.mode])).toEqual([
        ['agent-down-critical', 'agent-failure', 'ask'],
        ['agent-down', 'agent-failure', 'diagnose'],
      ]);
      // The runbook ids the example pack (--runbooks @aiwebtest/runbook-examples) defines.
      const packDir = join(REPO, 'packages/examples/src/aiwebtest');
      const packIds = readdirSync(packDir).flatMap((f) =>
        [...readFileSync(join(packDir, f), 'utf8').matchAll(/^\s+id: '([a-z0-9-]+)',$/gm)].map(
          (m) => m[1] as string,
        ),
      );
      expect(packIds).toContain('agent-failure');
      expect(() => checkRoutedRunbooks(config.alerts, packIds)).not.toThrow();
      expect(() => checkRoutedRunbooks(config.alerts, ['something-else'])).toThrow(/agent-failure/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads only Secrets the README tells operators to create, by name and key', () => {
    const documented = documentedSecrets();
    const referenced = referencedSecrets();
    expect(referenced).toEqual([
      { name: 'runbook-database', key: 'url' },
      { name: 'runbook-tokens', key: 'tokens.json' },
    ]);
    for (const { name, key } of referenced) {
      expect(documented.get(name), `${name} in README.md`).toContain(key);
      expect(README).toContain(`| \`${name}\``);
    }
  });

  it('locks the container down and gives the service time to drain', async () => {
    expect(pod.securityContext).toMatchObject({
      runAsNonRoot: true,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(pod.securityContext.runAsUser).toBeGreaterThan(0);
    expect(container.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    });
    expect(Object.keys(container.resources.requests).sort()).toEqual(['cpu', 'memory']);
    expect(Object.keys(container.resources.limits).sort()).toEqual(['cpu', 'memory']);
    // The only writable path is the /tmp emptyDir.
    const tmp = pod.volumes.find((v: Manifest) => v.emptyDir);
    expect(container.volumeMounts.find((m: { name: string }) => m.name === tmp?.name)?.mountPath).toBe(
      '/tmp',
    );
    // The tokens file: readable by the pod's group only (0440).
    expect(pod.volumes.find((v: Manifest) => v.secret).secret.defaultMode).toBe(0o440);

    const preStop = container.lifecycle.preStop.exec.command;
    expect(preStop[0]).toBe('sleep');
    const preStopSeconds = Number(preStop[1]);
    expect(preStopSeconds).toBeGreaterThanOrEqual(5);
    // The kubelet kills after terminationGracePeriodSeconds: the preStop sleep and serve's shutdown grace
    // (--shutdown-grace, else its default) must both fit, so the run is handed over rather than killed.
    const serveFlags = await parseServeArgs(container.args);
    const graceMs = serveFlags.shutdownGrace;
    if (!container.args.includes('--shutdown-grace')) expect(graceMs).toBe(DEFAULT_SHUTDOWN_GRACE_MS);
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(preStopSeconds + Number(graceMs) / 1000);
    // /readyz answers 503 by itself (after readyTimeoutMs) before the kubelet gives up on the probe.
    const readyTimeoutMs = ServerOptions.shape.readyTimeoutMs.parse(undefined);
    expect(container.readinessProbe.timeoutSeconds * 1000).toBeGreaterThan(readyTimeoutMs);
  });

  it('exposes the container port the service listens on, by name, through the Service', async () => {
    const flags = await parseServeArgs(container.args);
    expect(container.ports).toEqual([{ name: 'http', containerPort: flags.port, protocol: 'TCP' }]);
    const service = one(base, 'Service');
    expect(service.spec.type).toBe('ClusterIP');
    expect(service.spec.ports).toEqual([{ name: 'http', port: 8080, targetPort: 'http', protocol: 'TCP' }]);
    for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
      expect(container[probe].httpGet.port, probe).toBe('http');
    }
    const annotations = deployment.spec.template.metadata.annotations;
    expect(annotations['prometheus.io/port']).toBe(String(flags.port));
  });
});

describe('the paths the manifests probe and scrape, on the real service', () => {
  const service = serverFixture({
    schema: 'deploy',
    runbooks: () => [scaleRunbook()],
    server: { metrics: { registry: new Registry() } },
  });
  let url: string;
  beforeAll(() => {
    url = service.base;
  });

  it('answers every probe path 200 without a token, and /metrics in the Prometheus format', async () => {
    const paths = ['startupProbe', 'readinessProbe', 'livenessProbe'].map((p) => container[p].httpGet.path);
    expect(paths).toEqual(['/healthz', '/readyz', '/healthz']);
    for (const path of paths) {
      const response = await fetch(`${url}${path}`);
      expect(response.status, path).toBe(200);
      expect(await response.json()).toEqual({ status: 'ok' });
    }
    const metricsPath = deployment.spec.template.metadata.annotations['prometheus.io/path'];
    const metrics = await fetch(`${url}${metricsPath}`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toContain('# TYPE runbook_runs_total counter');
    // A path the service does not serve is a 404, so the checks above can fail.
    expect((await fetch(`${url}/health`)).status).toBe(404);
  });
});

describe('the manifests applied to a Kubernetes API (the SDK simulator) with @kubernetes/client-node', () => {
  let sim: KubernetesSimulator;
  let core: CoreV1Api;
  let apps: AppsV1Api;
  let objects: KubernetesObjectApi;

  beforeAll(async () => {
    sim = await startKubernetesSimulator({ contextName: 'deploy', cluster: { readinessDelay: 0 } });
    const kc = sim.kubeConfig();
    core = kc.makeApiClient(CoreV1Api);
    apps = kc.makeApiClient(AppsV1Api);
    objects = KubernetesObjectApi.makeApiClient(kc);
  });
  afterAll(async () => {
    await sim?.close();
  });

  async function rolledOut(name: string, replicas: number, image: string) {
    const deadline = Date.now() + 10_000;
    for (;;) {
      await sim.settle();
      const d = await apps.readNamespacedDeployment({ namespace: 'aiwebtest', name });
      const done =
        d.status?.availableReplicas === replicas &&
        d.status?.updatedReplicas === replicas &&
        d.status?.replicas === replicas &&
        d.status?.observedGeneration === d.metadata?.generation;
      if (done || Date.now() > deadline) {
        expect(d.status).toMatchObject({
          replicas,
          updatedReplicas: replicas,
          readyReplicas: replicas,
          availableReplicas: replicas,
        });
        expect(d.spec?.template.spec?.containers[0]?.image).toBe(image);
        return;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  it('rolls the Deployment out to 2 available replicas, reading the Secrets the README creates', async () => {
    await core.createNamespace({ body: { metadata: { name: 'aiwebtest' } } });
    // The Secrets, made as the README's commands make them (test values: a tokens file the service accepts).
    const values: Record<string, string> = {
      'tokens.json': JSON.stringify({
        tokens: [{ name: 'alertmanager', sha256: hashToken('test-token'), role: 'editor' }],
      }),
      url: POSTGRES_URL,
    };
    expect(() => TokensFile.parse(JSON.parse(values['tokens.json'] as string))).not.toThrow();
    for (const [name, keys] of documentedSecrets()) {
      await core.createNamespacedSecret({
        namespace: 'aiwebtest',
        body: {
          metadata: { name },
          // kubectl create secret --from-file sends the file's bytes base64-encoded in `data`.
          data: Object.fromEntries(
            [...keys].map((k) => [k, Buffer.from(values[k] as string).toString('base64')]),
          ),
        },
      });
    }

    // The simulator serves the core and apps kinds; ServiceAccount and PodDisruptionBudget are checked above.
    const served = base.filter((m) => SIMULATED_KINDS.has(m.kind));
    expect(base.filter((m) => !served.includes(m)).map((m) => m.kind)).toEqual([
      'ServiceAccount',
      'PodDisruptionBudget',
    ]);
    for (const manifest of served) await objects.create(manifest);

    await rolledOut('runbook-service', 2, 'ghcr.io/aiwebtest/runbook-service:0.1.0');
    const pods = await core.listNamespacedPod({
      namespace: 'aiwebtest',
      labelSelector: 'app.kubernetes.io/name=runbook-service',
    });
    expect(pods.items.map((p) => p.status?.phase)).toEqual(['Running', 'Running']);
    // Everything a pod mounts or reads exists in the cluster, under the names and keys it asks for.
    for (const { name, key } of referencedSecrets()) {
      const secret = await core.readNamespacedSecret({ namespace: 'aiwebtest', name });
      expect(Object.keys(secret.data ?? {}), name).toContain(key);
    }
    const configMap = await core.readNamespacedConfigMap({
      namespace: 'aiwebtest',
      name: 'runbook-service-config',
    });
    expect(Object.keys(configMap.data ?? {})).toEqual(['service.yaml']);

    const service = await core.readNamespacedService({ namespace: 'aiwebtest', name: 'runbook-service' });
    expect(service.spec?.ports).toEqual([
      expect.objectContaining({ name: 'http', port: 8080, targetPort: 'http', protocol: 'TCP' }),
    ]);
    expect(service.spec?.selector).toEqual({ 'app.kubernetes.io/name': 'runbook-service' });
    expect(service.spec?.clusterIP).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
  });

  it('rolls out the example overlay over it: the new image on 3 replicas, the rest unchanged', async () => {
    const overlay = kustomizeBuild(join(KUBERNETES_DIR, 'overlays/example'));
    const changed = one(overlay, 'Deployment');
    expect(changed.spec.replicas).toBe(3);
    // Apart from the image and the replica count, the overlay builds exactly the base.
    const image = 'registry.example.internal/aiwebtest/runbook-service:0.1.1';
    expect(changed.spec.template.spec.containers[0].image).toBe(image);
    const normalized = structuredClone(changed);
    normalized.spec.replicas = deployment.spec.replicas;
    normalized.spec.template.spec.containers[0].image = container.image;
    expect(overlay.map((m) => (m.kind === 'Deployment' ? normalized : m))).toEqual(base);

    const live = await apps.readNamespacedDeployment({ namespace: 'aiwebtest', name: 'runbook-service' });
    await objects.replace({
      ...changed,
      metadata: { ...changed.metadata, resourceVersion: live.metadata?.resourceVersion },
    });
    await rolledOut('runbook-service', 3, image);
  });
});

/** Runs promtool in `cwd`; its output is the failure message. */
function promtool(cwd: string, ...args: string[]): { status: number | null; output: string } {
  const result = spawnSync(PROMTOOL, args, { cwd, encoding: 'utf8', timeout: 30_000 });
  if (result.error)
    throw new Error(`${PROMTOOL}: ${result.error.message} (install the Debian package prometheus)`);
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

describe('deploy/prometheus, checked by promtool', () => {
  it('has a valid plain-host config whose rule file loads', () => {
    const check = promtool(PROMETHEUS_DIR, 'check', 'config', 'prometheus-static.yml');
    expect(check.status, check.output).toBe(0);
    expect(check.output).toContain('SUCCESS: 1 rule files found');
  });

  it('has a Kubernetes config that keeps exactly the runbook-service pods on their http port', () => {
    const config = parse(readFileSync(join(PROMETHEUS_DIR, 'prometheus.yml'), 'utf8'));
    const job = config.scrape_configs.find((c: { job_name: string }) => c.job_name === 'runbook-service');
    expect(job.kubernetes_sd_configs).toEqual([{ role: 'pod', namespaces: { names: ['aiwebtest'] } }]);
    expect(job.metrics_path).toBe(deployment.spec.template.metadata.annotations['prometheus.io/path']);
    // The keep rules, applied as Prometheus does (anchored regexes) to the pods of the Deployment.
    const meta: Record<string, string> = {
      __meta_kubernetes_pod_label_app_kubernetes_io_name:
        deployment.spec.template.metadata.labels['app.kubernetes.io/name'],
      __meta_kubernetes_pod_container_port_name: container.ports[0].name,
      __meta_kubernetes_pod_phase: 'Running',
    };
    const keeps = job.relabel_configs.filter((r: { action?: string }) => r.action === 'keep');
    expect(keeps.map((r: { source_labels: string[] }) => r.source_labels[0]).sort()).toEqual(
      Object.keys(meta).sort(),
    );
    for (const rule of keeps) {
      const value = meta[rule.source_labels[0]] as string;
      expect(new RegExp(`^(?:${rule.regex})$`).test(value), rule.source_labels[0]).toBe(true);
      expect(new RegExp(`^(?:${rule.regex})$`).test(`${value}-other`)).toBe(false);
    }
    // Debian's Prometheus is built without Kubernetes service discovery, so promtool checks everything else:
    // the same file with the discovery swapped for a static target.
    const dir = mkdtempSync(join(tmpdir(), 'prometheus-config-'));
    try {
      const { kubernetes_sd_configs: _discovery, ...rest } = job;
      config.scrape_configs = [{ ...rest, static_configs: [{ targets: ['10.0.0.1:8080'] }] }];
      writeFileSync(join(dir, 'prometheus.yml'), stringify(config));
      cpSync(join(PROMETHEUS_DIR, 'runbook-service.rules.yml'), join(dir, 'runbook-service.rules.yml'));
      const check = promtool(dir, 'check', 'config', 'prometheus.yml');
      expect(check.status, check.output).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('has alert rules that pass promtool check rules and their unit tests', () => {
    const check = promtool(PROMETHEUS_DIR, 'check', 'rules', 'runbook-service.rules.yml');
    expect(check.status, check.output).toBe(0);
    expect(check.output).toContain('SUCCESS: 4 rules found');
    const test = promtool(PROMETHEUS_DIR, 'test', 'rules', 'runbook-service.rules.test.yml');
    expect(test.status, test.output).toBe(0);
    // The outcome the failing-runs alert counts is one the service records.
    expect(FINAL_RUN_STATUSES).toContain('failed');
  });

  it('has rule unit tests that fail when an alert changes', () => {
    const dir = mkdtempSync(join(tmpdir(), 'prometheus-rules-'));
    try {
      cpSync(
        join(PROMETHEUS_DIR, 'runbook-service.rules.test.yml'),
        join(dir, 'runbook-service.rules.test.yml'),
      );
      const rules = readFileSync(join(PROMETHEUS_DIR, 'runbook-service.rules.yml'), 'utf8');
      // Summing the store-wide gauge over replicas would double the count the alert reports.
      const mutated = rules.replace(
        'max by (job) (runbook_approvals_pending',
        'sum by (job) (runbook_approvals_pending',
      );
      expect(mutated).not.toBe(rules);
      writeFileSync(join(dir, 'runbook-service.rules.yml'), mutated);
      const test = promtool(dir, 'test', 'rules', 'runbook-service.rules.test.yml');
      expect(test.status).not.toBe(0);
      expect(test.output).toContain('RunbookApprovalsPendingTooLong');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
