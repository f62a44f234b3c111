import {
  DEPLOYMENTS,
  type KubernetesSimulator,
  PODS,
  startKubernetesSimulator,
} from '@aiwebtest/runbooks/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AGENTS,
  agentMetricLabel,
  backendEnvDefaults,
  PLATFORM_DEPLOYMENTS,
  PLATFORM_STATEFULSETS,
  platformManifests,
} from './manifests';
import { workloadStatus } from './platform-status';

let sim: KubernetesSimulator;

beforeAll(async () => {
  sim = await startKubernetesSimulator({ cluster: { crashBackoff: '50ms', metricsInterval: '10s' } });
  sim.apply(
    ...platformManifests({ ollamaUrl: 'http://127.0.0.1:11434', openRouterMaxRequestsPerMinute: 30 }),
  );
  await sim.settle({ timeoutMs: 10_000 });
});
afterAll(async () => {
  await sim?.close();
});

type Container = {
  name: string;
  image: string;
  env?: { name: string; value: string }[];
  resources: { limits: Record<string, string>; requests: Record<string, string> };
  readinessProbe?: unknown;
};
const containerOf = (name: string): Container => {
  const d = sim.store.get(DEPLOYMENTS, 'aiwebtest', name) as unknown as {
    spec: { template: { spec: { containers: Container[] } } };
  };
  const c = d.spec.template.spec.containers[0];
  if (!c) throw new Error(`deployment ${name} has no container`);
  return c;
};

describe('platformManifests', () => {
  it('applies cleanly and every workload becomes ready with its desired replicas', () => {
    const expected: Record<string, number> = {
      ...Object.fromEntries(AGENTS.map((a) => [a, 2])),
      backend: 2,
      'selenium-hub': 1,
      'selenium-node-chrome': 2,
      'selenium-node-firefox': 1,
      pgbouncer: 1,
      ollama: 1,
      postgres: 1,
      redis: 1,
    };
    const names = [...PLATFORM_DEPLOYMENTS, ...PLATFORM_STATEFULSETS];
    expect(names.sort()).toEqual(Object.keys(expected).sort());
    for (const name of names) {
      const status = workloadStatus(sim.store, 'aiwebtest', name);
      expect(status, name).toMatchObject({
        desired: expected[name],
        ready: expected[name],
        pods: expected[name],
      });
    }
    expect(workloadStatus(sim.store, 'aiwebtest', 'postgres')?.kind).toBe('StatefulSet');
  });

  it('labels pods app=<name>; selenium nodes app=selenium-node with a browser, each selector its own', () => {
    const pods = sim.store.list(PODS, 'aiwebtest').items;
    const byApp = (app: string) => pods.filter((p) => p.metadata.labels?.app === app);
    expect(byApp('requirements-agent')).toHaveLength(2);
    expect(byApp('postgres').map((p) => p.metadata.name)).toEqual(['postgres-0']);
    const nodes = byApp('selenium-node');
    expect(nodes.map((p) => p.metadata.labels?.browser).sort()).toEqual(['chrome', 'chrome', 'firefox']);
    // Each deployment's selector picks only its own pods (the shared app label alone would pick all three).
    for (const d of sim.store.list(DEPLOYMENTS, 'aiwebtest').items) {
      const match = (d.spec as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels;
      const selected = pods.filter((p) =>
        Object.entries(match).every(([k, v]) => p.metadata.labels?.[k] === v),
      );
      expect(
        selected.every((p) => p.metadata.ownerReferences?.[0]?.name.startsWith(`${d.metadata.name}-`)),
        d.metadata.name,
      ).toBe(true);
    }
  });

  it('gives agents the manual’s limits (2 CPU, 4Gi), versioned images and readiness probes', () => {
    for (const agent of AGENTS) {
      const c = containerOf(agent);
      expect(c.resources.limits).toEqual({ cpu: '2', memory: '4Gi' });
      expect(c.resources.requests.cpu).toBeDefined();
      expect(c.image).toMatch(/:\d+\.\d+\.\d+$/);
      expect(c.readinessProbe).toMatchObject({ httpGet: { path: '/health', port: 8000 } });
    }
    expect(containerOf('selenium-node-chrome').image).toMatch(/^selenium\/node-chrome:4\./);
  });

  it('sets the backend env defaults with the values passed in', () => {
    const env = Object.fromEntries((containerOf('backend').env ?? []).map((e) => [e.name, e.value]));
    expect(env).toEqual({
      OPENROUTER_FALLBACK: 'false',
      OLLAMA_URL: 'http://127.0.0.1:11434',
      OPENROUTER_QUEUE_ENABLED: 'false',
      OPENROUTER_MAX_REQUESTS_PER_MINUTE: '30',
      OPENROUTER_CACHE_ENABLED: 'false',
      OPENROUTER_CACHE_TTL: '300',
      MAX_PARALLEL_TESTS: '2',
      TEST_RESULT_CACHE_ENABLED: 'false',
      TEST_RESULT_CACHE_TTL: '3600',
    });
    expect(backendEnvDefaults().OLLAMA_URL).toBe('http://ollama:11434');
  });

  it('refuses a bad option, naming it', () => {
    expect(() => platformManifests({ ollamaUrl: 'not a url' })).toThrow(/ollamaUrl/);
  });

  it('converts agent names to metric labels', () => {
    expect(agentMetricLabel('requirements-agent')).toBe('requirements_agent');
    expect(AGENTS.map(agentMetricLabel)).toContain('evolution_agent');
    expect(AGENTS).toHaveLength(6);
  });
});
