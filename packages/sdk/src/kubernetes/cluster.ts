import {
  AppsV1Api,
  type Configuration,
  type ConfigurationOptions,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  KubernetesObjectApi,
  Observable,
  type RequestContext,
  VersionApi,
} from '@kubernetes/client-node';
import { z } from 'zod';
import { Duration, toMillis } from '../core/duration';
import { parseOptions } from '../core/parse-options';
import { type ResourceRef, resourceRef } from '../core/resource';
import { KubernetesGuardError, toKubernetesError } from './errors';
import { NamespaceName } from './options';

/** How to reach a cluster, and the guard rails every action on it passes first. */
export const KubernetesOptions = z.object({
  /**
   * A loaded `KubeConfig`, the text of a kubeconfig file, or nothing to load the default
   * (`$KUBECONFIG`, `~/.kube/config`, or the in-cluster service account).
   * @default the default kubeconfig
   */
  kubeConfig: z.union([z.instanceof(KubeConfig), z.string().min(1)]).optional(),
  /** The kubeconfig context to use. @default the kubeconfig's current context */
  context: z.string().min(1).optional(),
  /**
   * The context name this code is meant for. Every check and action refuses to run, before making any
   * call, when the kubeconfig points at another one: a runbook written for staging never touches production.
   */
  expectedContext: z.string().min(1),
  /** Namespaces actions may change. Actions elsewhere are refused before any call is made; checks may read anywhere. */
  namespaces: z.array(NamespaceName).min(1, 'expected at least one namespace that actions may change'),
  /** Bound on every API request (the step's own signal still applies). @default "10s" */
  requestTimeout: Duration.default('10s'),
});
export type KubernetesOptions = z.output<typeof KubernetesOptions>;
export type KubernetesOptionsInput = z.input<typeof KubernetesOptions>;

/** Which workloads the rollout actions and checks accept. */
export type WorkloadKind = 'Deployment' | 'StatefulSet';

/** Per-request options: abort and timeout, and optionally the patch content type. */
export interface RequestOptions {
  signal?: AbortSignal;
  /** `Content-Type` of a PATCH: JSON patch is the client's default. */
  contentType?:
    | 'application/json-patch+json'
    | 'application/merge-patch+json'
    | 'application/strategic-merge-patch+json';
}

/**
 * A connection to one cluster with its guard rails. Create it once per cluster with
 * {@link connectKubernetes}; checks and actions take it as their first argument.
 */
export class KubernetesCluster {
  readonly core: CoreV1Api;
  readonly apps: AppsV1Api;
  readonly custom: CustomObjectsApi;
  readonly version: VersionApi;
  /** The context the kubeconfig selects. */
  readonly context: string;
  readonly #options: KubernetesOptions;
  readonly #objects: KubernetesObjectApi;

  constructor(options: KubernetesOptions, kubeConfig: KubeConfig) {
    this.#options = options;
    this.context = kubeConfig.getCurrentContext();
    this.core = kubeConfig.makeApiClient(CoreV1Api);
    this.apps = kubeConfig.makeApiClient(AppsV1Api);
    this.custom = kubeConfig.makeApiClient(CustomObjectsApi);
    this.version = kubeConfig.makeApiClient(VersionApi);
    this.#objects = KubernetesObjectApi.makeApiClient(kubeConfig);
  }

  /** Namespaces actions may change. */
  get namespaces(): readonly string[] {
    return this.#options.namespaces;
  }

  /** Throws {@link KubernetesGuardError} unless the kubeconfig's context is the expected one. Makes no call. */
  assertContext(): void {
    if (this.context !== this.#options.expectedContext) {
      throw new KubernetesGuardError(
        `Refused: the kubeconfig's context is "${this.context}" but this code expects "${this.#options.expectedContext}". Select the right context (kubectl config use-context) or fix expectedContext.`,
        { context: this.context, expectedContext: this.#options.expectedContext },
      );
    }
  }

  /** Throws {@link KubernetesGuardError} unless actions may change `namespace` in this context. Makes no call. */
  assertMayChange(namespace: string): void {
    this.assertContext();
    if (!this.#options.namespaces.includes(namespace)) {
      throw new KubernetesGuardError(
        `Refused: namespace "${namespace}" is not in the allowed list [${this.#options.namespaces.join(', ')}]. Add it to the \`namespaces\` option to allow actions there.`,
        { namespace, allowed: [...this.#options.namespaces] },
      );
    }
  }

  /**
   * The generic objects API (any kind, by manifest) for one request made with `options` (from
   * {@link call}). `KubernetesObjectApi` ignores per-call middleware and reads only its own
   * configuration, so the step's signal and the timeout reach it through a per-request view with the
   * middleware appended; the view inherits the shared discovery cache.
   */
  objects(options: ConfigurationOptions): KubernetesObjectApi {
    const base = (this.#objects as unknown as { configuration: Configuration }).configuration;
    const view = Object.create(this.#objects) as KubernetesObjectApi & { configuration: Configuration };
    view.configuration = { ...base, middleware: [...base.middleware, ...(options.middleware ?? [])] };
    return view;
  }

  /** Options for one request: the step's signal combined with the request timeout, and a patch content type. */
  requestOptions(options: RequestOptions = {}): ConfigurationOptions {
    const timeout = AbortSignal.timeout(toMillis(this.#options.requestTimeout));
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
    return {
      middleware: [
        {
          pre: (request: RequestContext) => {
            request.setSignal(signal);
            if (options.contentType) request.setHeaderParam('Content-Type', options.contentType);
            return new Observable(Promise.resolve(request));
          },
          post: (response) => new Observable(Promise.resolve(response)),
        },
      ],
      middlewareMergeStrategy: 'append',
    };
  }

  /**
   * Runs one API call with the guard already checked by the caller, turning failures into
   * {@link KubernetesApiError}s that carry the Kubernetes `reason`. `what` names the call for messages.
   */
  async call<T>(
    what: string,
    request: (options: ConfigurationOptions) => Promise<T>,
    options: RequestOptions = {},
  ): Promise<T> {
    try {
      return await request(this.requestOptions(options));
    } catch (e) {
      throw toKubernetesError(e, what, this.context);
    }
  }
}

/**
 * Connects to a cluster: validates the options (an `InputValidationError` names each bad field) and loads the kubeconfig.
 * Nothing is called until a check or action runs.
 */
export function connectKubernetes(options: KubernetesOptionsInput): KubernetesCluster {
  const parsed = parseOptions('kubernetes', KubernetesOptions, options);
  let kubeConfig: KubeConfig;
  if (parsed.kubeConfig instanceof KubeConfig) {
    kubeConfig = parsed.kubeConfig;
  } else {
    kubeConfig = new KubeConfig();
    if (parsed.kubeConfig === undefined) kubeConfig.loadFromDefault();
    else kubeConfig.loadFromString(parsed.kubeConfig);
  }
  if (parsed.context) {
    if (!kubeConfig.getContextObject(parsed.context)) {
      throw new KubernetesGuardError(
        `The kubeconfig has no context "${parsed.context}" (it has: ${
          kubeConfig
            .getContexts()
            .map((c) => c.name)
            .join(', ') || 'none'
        }).`,
        { context: parsed.context },
      );
    }
    // A copy, so that selecting a context here never changes a KubeConfig the caller shares.
    const copy = new KubeConfig();
    copy.loadFromString(kubeConfig.exportConfig());
    copy.setCurrentContext(parsed.context);
    kubeConfig = copy;
  }
  return new KubernetesCluster(parsed, kubeConfig);
}

/** The {@link ResourceRef} of a namespaced object: `k8s:<namespace>/<kind>/<name>`, kind in lower case. */
export function k8sRef(namespace: string, kind: string, name: string): ResourceRef {
  return resourceRef('k8s', namespace, kind.toLowerCase(), name);
}
