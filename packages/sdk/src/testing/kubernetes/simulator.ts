import { KubeConfig } from '@kubernetes/client-node';
import { z } from 'zod';
import { Duration } from '../../core/duration';
import { InputValidationError } from '../../core/errors';
import { type ApiFault, ApiFaults, type InjectedApiFault } from './api-faults';
import { startApiServer } from './api-server';
import { ClusterControllers } from './controllers/cluster';
import { ClusterOptions } from './controllers/controller';
import type { Usage } from './controllers/metrics';
import type { PodFault } from './controllers/pod-faults';
import { type PodFiles, PodFilesystems } from './exec-filesystem';
import { execUpgradeHandler } from './exec-server';
import { type KubeObject, type KubeObjectInput, ObjectStore } from './object-store';
import { apiVersionOf, NAMESPACES, RESOURCE_TYPES, type ResourceType, typeForKind } from './resources';
import { applyDefaults, prepareForCreate, validate } from './strategy';

/** How to start a {@link KubernetesSimulator}. */
export const KubernetesSimulatorOptions = z.object({
  /** Interface the API server listens on. @default "127.0.0.1" */
  host: z.string().min(1).default('127.0.0.1'),
  /** Port of the API server; 0 picks a free one. @default 0 */
  port: z.number().int().min(0).max(65535).default(0),
  /** Name of the kubeconfig context, cluster and user. @default "simulator" */
  contextName: z.string().min(1).default('simulator'),
  /** The kubeconfig context's namespace, created at start; `apply()` puts objects without one here. @default "default" */
  namespace: z.string().min(1).default('default'),
  /** How the simulated cluster behaves: nodes, start and readiness delays, crash back-off, metrics interval. @default the ClusterOptions defaults */
  cluster: ClusterOptions.partial().optional(),
  /** How often watches that allow bookmarks get one. @default "1s" */
  bookmarkInterval: Duration.default('1s'),
});
export type KubernetesSimulatorOptions = z.input<typeof KubernetesSimulatorOptions>;

/** A fault to inject into a simulator: one that breaks pods or nodes, or one of the API server itself. */
export type SimulatorFault = PodFault | ApiFault;

/** The bearer token in the simulator's kubeconfig (the simulator does not check it). */
const TOKEN = 'simulator-token';

/** A running simulated cluster: an API server, the controllers behind it, and handles for tests. */
export interface KubernetesSimulator {
  /** The API server's base URL, e.g. `http://127.0.0.1:41234`. */
  url: string;
  contextName: string;
  /** The cluster state, for direct inspection in tests. Writes through it are seen by controllers and watches. */
  store: ObjectStore;
  /** A client configuration for this cluster (plain HTTP, so `skipTLSVerify` is set; any token is accepted). */
  kubeConfig(): KubeConfig;
  /** The same as a kubeconfig file to point `KUBECONFIG` (kubectl, other tools) at. */
  kubeConfigYaml(): string;
  /**
   * Seeds objects straight into the store, like `kubectl replace --force` without the API round trip:
   * each manifest is created, or replaces the stored object of the same name (its `status`, when given,
   * is written too). Namespaces go first; defaults and validation are those of the API server.
   * Returns the stored objects, in the order given.
   */
  apply(...manifests: object[]): KubeObject[];
  /** Pod, node and API faults; ids are unique across all three. */
  faults: {
    inject(fault: SimulatorFault): { id: string; clear(): void };
    clear(id: string): void;
    clearAll(): void;
    list(): (SimulatorFault & { id: string })[];
  };
  /** Resolves when the controllers are idle (every change reconciled). */
  settle(options?: { timeoutMs?: number }): Promise<void>;
  /** Adds lines to a container's current log, as the application would write them. */
  appendLog(namespace: string, pod: string, container: string, text: string): void;
  /** Pins a container's CPU and memory usage as metrics-server reports it. */
  setUsage(namespace: string, pod: string, container: string, usage: Usage): void;
  /**
   * The files of a pod's containers (one tiny in-memory filesystem per pod) that `pods/exec` sees: seed them,
   * then `find <dir> -type f -mmin -N` lists and `rm -f -- <paths>` removes them through the real client's `Exec`.
   */
  files(namespace: string, pod: string): PodFiles;
  /** Stops the API server (ending watches) and the controllers. */
  close(): Promise<void>;
}

const isApiFault = (fault: SimulatorFault): fault is ApiFault =>
  fault.kind === 'apiError' || fault.kind === 'apiLatency';

/**
 * Starts a simulated Kubernetes cluster: an in-memory store with the namespaces `default`,
 * `kube-system` and the context's namespace, the cluster controllers (nodes, deployments, replica sets,
 * stateful sets, kubelet, metrics), and an HTTP API server that `@kubernetes/client-node` and kubectl
 * can talk to. It is a test double: close it when done.
 *
 * @throws InputValidationError naming the option that is wrong.
 */
export async function startKubernetesSimulator(
  input: KubernetesSimulatorOptions = {},
): Promise<KubernetesSimulator> {
  const parsed = KubernetesSimulatorOptions.safeParse(input);
  if (!parsed.success) {
    throw new InputValidationError(
      'Kubernetes simulator options',
      parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
    );
  }
  const options = parsed.data;
  const store = new ObjectStore();
  for (const name of new Set(['default', 'kube-system', options.namespace])) {
    store.create(NAMESPACES, applyDefaults(NAMESPACES, prepareForCreate(NAMESPACES, { metadata: { name } })));
  }
  const controllers = new ClusterControllers(store, options.cluster ?? {});
  const apiFaults = new ApiFaults();
  const filesystems = new PodFilesystems();
  controllers.start();
  let server: Awaited<ReturnType<typeof startApiServer>>;
  try {
    server = await startApiServer({
      store,
      logs: (namespace, pod, o) => controllers.logs(namespace, pod, o),
      faults: apiFaults,
      host: options.host,
      port: options.port,
      bookmarkInterval: options.bookmarkInterval,
      upgrade: execUpgradeHandler(store, filesystems),
    });
  } catch (e) {
    await controllers.stop();
    throw e;
  }
  const { contextName, namespace } = options;

  return {
    url: server.url,
    contextName,
    store,
    kubeConfig() {
      const kc = new KubeConfig();
      kc.loadFromOptions({
        clusters: [{ name: contextName, server: server.url, skipTLSVerify: true }],
        users: [{ name: contextName, token: TOKEN }],
        contexts: [{ name: contextName, cluster: contextName, user: contextName, namespace }],
        currentContext: contextName,
      });
      return kc;
    },
    kubeConfigYaml() {
      // JSON strings are valid YAML scalars, so quoting with JSON.stringify is always safe.
      const q = JSON.stringify;
      return [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        `- name: ${q(contextName)}`,
        '  cluster:',
        `    server: ${q(server.url)}`,
        '    insecure-skip-tls-verify: true',
        'users:',
        `- name: ${q(contextName)}`,
        '  user:',
        `    token: ${q(TOKEN)}`,
        'contexts:',
        `- name: ${q(contextName)}`,
        '  context:',
        `    cluster: ${q(contextName)}`,
        `    user: ${q(contextName)}`,
        `    namespace: ${q(namespace)}`,
        `current-context: ${q(contextName)}`,
        'preferences: {}',
        '',
      ].join('\n');
    },
    apply: (...manifests) => applyManifests(store, namespace, manifests),
    faults: {
      inject: (fault) => (isApiFault(fault) ? apiFaults.inject(fault) : controllers.faults.inject(fault)),
      clear(id) {
        if (!apiFaults.clear(id)) controllers.faults.clear(id);
      },
      clearAll() {
        apiFaults.clearAll();
        controllers.faults.clearAll();
      },
      list: () => [...controllers.faults.list(), ...apiFaults.list().map(withoutHits)],
    },
    settle: (o) => controllers.settle(o),
    appendLog: (ns, pod, container, text) => controllers.appendLog(ns, pod, container, text),
    setUsage: (ns, pod, container, usage) => controllers.setUsage(ns, pod, container, usage),
    files: (ns, pod) => filesystems.files(ns, pod),
    async close() {
      await server.close();
      await controllers.stop();
    },
  };
}

function withoutHits({ hits: _hits, ...fault }: InjectedApiFault): ApiFault & { id: string } {
  return fault;
}

function applyManifests(store: ObjectStore, defaultNamespace: string, manifests: object[]): KubeObject[] {
  const typed = manifests.map((manifest, index) => {
    const m = manifest as KubeObjectInput;
    const type = typeForKind(String(m.apiVersion), String(m.kind));
    if (!type) {
      const served = RESOURCE_TYPES.map((t) => `${apiVersionOf(t)}/${t.kind}`).join(', ');
      throw new InputValidationError('manifest', [
        {
          path: `[${index}]`,
          message: `apiVersion "${String(m.apiVersion)}" kind "${String(m.kind)}" is not served by the simulator (it serves ${served})`,
        },
      ]);
    }
    return { type, manifest: m, index };
  });
  const ordered = [...typed].sort((a, b) => Number(b.type === NAMESPACES) - Number(a.type === NAMESPACES));
  const results: KubeObject[] = [];
  for (const { type, manifest, index } of ordered) {
    results[index] = applyOne(store, type, manifest, defaultNamespace);
  }
  return results;
}

function applyOne(
  store: ObjectStore,
  type: ResourceType,
  manifest: KubeObjectInput,
  defaultNamespace: string,
): KubeObject {
  const metadata = { ...structuredClone(manifest.metadata ?? {}) };
  if (type.namespaced) metadata.namespace ??= defaultNamespace;
  else delete metadata.namespace;
  delete metadata.resourceVersion; // a seed always wins
  const object = applyDefaults(type, { ...structuredClone(manifest), metadata });
  const existing = metadata.name ? store.find(type, metadata.namespace, metadata.name) : undefined;
  validate(type, object, existing);
  if (!existing) return store.create(type, object);
  const updated = store.update(type, object);
  if (manifest.status === undefined || !type.hasStatus) return updated;
  return store.update(
    type,
    { ...updated, status: structuredClone(manifest.status) },
    { subresource: 'status' },
  );
}
