import { InputValidationError } from '@aiwebtest/runbooks';
import { z } from 'zod';

/**
 * The AI-Web-Test platform as Kubernetes manifests: what the lab applies to its simulated cluster so that
 * the manual's kubectl lines (`-l app=requirements-agent`, `deployment/backend`, `statefulset/postgres`)
 * find the objects they expect.
 */

/** The namespace the manual's commands use. */
export const PLATFORM_NAMESPACE = 'aiwebtest';

/** The six agents, by deployment name. */
export const AGENTS = [
  'requirements-agent',
  'generation-agent',
  'execution-agent',
  'observation-agent',
  'analysis-agent',
  'evolution-agent',
] as const;
export type AgentName = (typeof AGENTS)[number];

/** The browsers the Selenium node deployments provide. */
export const BROWSERS = ['chrome', 'firefox'] as const;
export type Browser = (typeof BROWSERS)[number];

/** Deployment name of the Selenium nodes of one browser. */
export const seleniumNodeDeployment = (browser: Browser): string => `selenium-node-${browser}`;

/** The Selenium hub's deployment (and `app` label). */
export const SELENIUM_HUB = 'selenium-hub';

/** Every Deployment of the platform. */
export const PLATFORM_DEPLOYMENTS = [
  ...AGENTS,
  'backend',
  SELENIUM_HUB,
  seleniumNodeDeployment('chrome'),
  seleniumNodeDeployment('firefox'),
  'pgbouncer',
  'ollama',
] as const;

/** Every StatefulSet of the platform. */
export const PLATFORM_STATEFULSETS = ['postgres', 'redis'] as const;

/**
 * The label value metrics use for an agent: `requirements-agent` → `requirements_agent`, as in
 * `agent_health{agent="requirements_agent"}` (Prometheus label values may hold `-`, but the manual's
 * alerts are written with underscores).
 */
export function agentMetricLabel(agent: string): string {
  return agent.replaceAll('-', '_');
}

/** Options of {@link platformManifests}; every outside value is checked, and a bad one is named. */
export const PlatformManifestsOptions = z.object({
  /** @default "aiwebtest" */
  namespace: z
    .string()
    .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'expected a namespace name')
    .default(PLATFORM_NAMESPACE),
  /** The backend's `OLLAMA_URL`: where the lab's Ollama double listens. @default "http://ollama:11434" */
  ollamaUrl: z.url({ message: 'expected a URL' }).default('http://ollama:11434'),
  /** The backend's `OPENROUTER_MAX_REQUESTS_PER_MINUTE`. @default 60 */
  openRouterMaxRequestsPerMinute: z.number({ message: 'expected a number' }).int().positive().default(60),
  /** Replicas per agent deployment. @default 2 */
  agentReplicas: z.number().int().min(0).default(2),
  /** Replicas of `selenium-node-chrome`. @default 2 */
  chromeNodes: z.number().int().min(0).default(2),
  /** Replicas of `selenium-node-firefox`. @default 1 */
  firefoxNodes: z.number().int().min(0).default(1),
  /** Extra backend env, set after the defaults (so it can override them). */
  backendEnv: z.record(z.string().min(1), z.string()).default({}),
});
export type PlatformManifestsOptions = z.input<typeof PlatformManifestsOptions>;

/** A manifest as the simulator's `apply()` and the API take it. */
export type Manifest = Record<string, unknown> & { apiVersion: string; kind: string };

interface Resources {
  requests: { cpu: string; memory: string };
  limits: { cpu: string; memory: string };
}

interface Workload {
  name: string;
  kind: 'Deployment' | 'StatefulSet';
  replicas: number;
  image: string;
  port: number;
  /** Pod labels besides `app`; with `app` they form the selector, which must be unique per workload. */
  labels?: Record<string, string>;
  app?: string;
  resources: Resources;
  env?: Record<string, string>;
  /** HTTP path of the readiness probe; without one a TCP probe on the port. */
  readyPath?: string;
}

// The manual's prevention section for agents: "Set resource limits (CPU: 2 cores, Memory: 4GB) and requests".
const AGENT_RESOURCES: Resources = {
  requests: { cpu: '500m', memory: '1Gi' },
  limits: { cpu: '2', memory: '4Gi' },
};

const small = (cpu: string, memory: string, limitCpu: string, limitMemory: string): Resources => ({
  requests: { cpu, memory },
  limits: { cpu: limitCpu, memory: limitMemory },
});

/** Validates the options; an {@link InputValidationError} names each bad field. */
function parseOptions(options: PlatformManifestsOptions): z.output<typeof PlatformManifestsOptions> {
  const parsed = PlatformManifestsOptions.safeParse(options);
  if (!parsed.success) {
    throw new InputValidationError(
      'platform manifest options',
      parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
    );
  }
  return parsed.data;
}

/** The backend's environment defaults (LAB.md), before `backendEnv` overrides. */
export function backendEnvDefaults(options: PlatformManifestsOptions = {}): Record<string, string> {
  const o = parseOptions(options);
  return {
    OPENROUTER_FALLBACK: 'false',
    OLLAMA_URL: o.ollamaUrl,
    OPENROUTER_QUEUE_ENABLED: 'false',
    OPENROUTER_MAX_REQUESTS_PER_MINUTE: String(o.openRouterMaxRequestsPerMinute),
    OPENROUTER_CACHE_ENABLED: 'false',
    OPENROUTER_CACHE_TTL: '300',
    MAX_PARALLEL_TESTS: '2',
    TEST_RESULT_CACHE_ENABLED: 'false',
    TEST_RESULT_CACHE_TTL: '3600',
  };
}

function workloads(o: z.output<typeof PlatformManifestsOptions>): Workload[] {
  const agents: Workload[] = AGENTS.map((name) => ({
    name,
    kind: 'Deployment',
    replicas: o.agentReplicas,
    image: `ghcr.io/aiwebtest/${name}:1.4.2`,
    port: 8000,
    resources: AGENT_RESOURCES,
    readyPath: '/health',
    env: { AGENT_NAME: name, REDIS_URL: 'redis://redis:6379/0' },
  }));
  const node = (browser: Browser, replicas: number): Workload => ({
    name: seleniumNodeDeployment(browser),
    app: 'selenium-node',
    labels: { browser },
    kind: 'Deployment',
    replicas,
    image: `selenium/node-${browser}:4.27.0-20241204`,
    port: 5555,
    resources: small('500m', '1Gi', '1', '2Gi'),
    env: { SE_EVENT_BUS_HOST: SELENIUM_HUB, SE_NODE_MAX_SESSIONS: '10' },
    readyPath: '/status',
  });
  return [
    ...agents,
    {
      name: 'backend',
      kind: 'Deployment',
      replicas: 2,
      image: 'ghcr.io/aiwebtest/backend:1.4.2',
      port: 8000,
      resources: small('500m', '512Mi', '1', '1Gi'),
      readyPath: '/health',
      env: { ...backendEnvDefaults(o), ...o.backendEnv },
    },
    {
      name: SELENIUM_HUB,
      kind: 'Deployment',
      replicas: 1,
      image: 'selenium/hub:4.27.0-20241204',
      port: 4444,
      resources: small('250m', '512Mi', '1', '1Gi'),
      readyPath: '/status',
    },
    node('chrome', o.chromeNodes),
    node('firefox', o.firefoxNodes),
    {
      name: 'pgbouncer',
      kind: 'Deployment',
      replicas: 1,
      image: 'bitnami/pgbouncer:1.23.1',
      port: 6432,
      resources: small('100m', '64Mi', '500m', '256Mi'),
    },
    {
      name: 'ollama',
      kind: 'Deployment',
      replicas: 1,
      image: 'ollama/ollama:0.5.4',
      port: 11434,
      resources: small('1', '4Gi', '4', '8Gi'),
      readyPath: '/api/tags',
    },
    {
      name: 'postgres',
      kind: 'StatefulSet',
      replicas: 1,
      image: 'postgres:16.6',
      port: 5432,
      resources: small('500m', '1Gi', '2', '4Gi'),
      env: { POSTGRES_DB: 'aiwebtest', POSTGRES_USER: 'postgres' },
    },
    {
      name: 'redis',
      kind: 'StatefulSet',
      replicas: 1,
      image: 'redis:7.4.1',
      port: 6379,
      resources: small('100m', '128Mi', '500m', '512Mi'),
    },
  ];
}

function manifestsOf(w: Workload, namespace: string): Manifest[] {
  const app = w.app ?? w.name;
  // `app=selenium-node` is shared by both node deployments; `browser` keeps each selector to its own pods.
  const selector = { app, ...(w.labels ?? {}) };
  const probe = w.readyPath
    ? { httpGet: { path: w.readyPath, port: w.port } }
    : { tcpSocket: { port: w.port } };
  const container = {
    name: app,
    image: w.image,
    ports: [{ name: 'http', containerPort: w.port }],
    ...(w.env ? { env: Object.entries(w.env).map(([name, value]) => ({ name, value })) } : {}),
    resources: w.resources,
    readinessProbe: { ...probe, initialDelaySeconds: 5, periodSeconds: 10, failureThreshold: 3 },
    livenessProbe: { ...probe, initialDelaySeconds: 30, periodSeconds: 20, failureThreshold: 3 },
  };
  const workload: Manifest = {
    apiVersion: 'apps/v1',
    kind: w.kind,
    metadata: { name: w.name, namespace, labels: selector },
    spec: {
      replicas: w.replicas,
      ...(w.kind === 'StatefulSet' ? { serviceName: w.name } : {}),
      selector: { matchLabels: selector },
      template: {
        metadata: { labels: selector },
        spec: { containers: [container] },
      },
    },
  };
  const service: Manifest = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: w.name, namespace, labels: { app } },
    spec: {
      selector,
      ports: [{ name: 'http', port: w.port, targetPort: w.port }],
      // The StatefulSets' governing services are headless, as their stable pod DNS names need.
      ...(w.kind === 'StatefulSet' ? { clusterIP: 'None' } : {}),
    },
  };
  return [workload, service];
}

/**
 * The platform's manifests: the Namespace, then a Deployment or StatefulSet and a Service per workload.
 * @throws InputValidationError naming the option that is wrong.
 */
export function platformManifests(options: PlatformManifestsOptions = {}): Manifest[] {
  const o = parseOptions(options);
  const namespace: Manifest = {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: o.namespace, labels: { 'app.kubernetes.io/part-of': 'aiwebtest' } },
  };
  return [namespace, ...workloads(o).flatMap((w) => manifestsOf(w, o.namespace))];
}
