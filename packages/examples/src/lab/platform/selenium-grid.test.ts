import type { KubernetesCluster } from '@aiwebtest/runbooks/kubernetes';
import type { KubernetesSimulator } from '@aiwebtest/runbooks/testing';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { applyPlatform, startPlatformSimulator } from './platform-simulator.fixture';
import { type SeleniumGridDouble, startSeleniumGridDouble } from './selenium-grid';

let sim: KubernetesSimulator;
let cluster: KubernetesCluster;
let grid: SeleniumGridDouble;

beforeAll(async () => {
  ({ sim, cluster } = await startPlatformSimulator());
});
afterAll(async () => {
  await sim?.close();
});
beforeEach(async () => {
  // A fresh platform per test: re-applying the manifests resets every replica count.
  sim.faults.clearAll();
  await applyPlatform(sim);
  grid = await startSeleniumGridDouble({ simulator: sim, namespace: 'aiwebtest' });
});
afterEach(async () => {
  await grid?.close();
});

/** `kubectl scale deployment/<name> --replicas=N`, through the real client on the simulator's API. */
async function scale(name: string, replicas: number): Promise<void> {
  await cluster.call(
    `scale ${name}`,
    (o) =>
      cluster.apps.patchNamespacedDeploymentScale(
        { name, namespace: 'aiwebtest', body: { spec: { replicas } } },
        o,
      ),
    { contentType: 'application/merge-patch+json' },
  );
  await sim.settle({ timeoutMs: 10_000 });
}

interface Slot {
  id: { hostId: string; id: string };
  lastStarted: string;
  session: null | {
    sessionId: string;
    capabilities: Record<string, unknown>;
    start: string;
    stereotype: unknown;
    uri: string;
  };
  stereotype: { browserName: string; platformName: string };
}
interface Node {
  id: string;
  uri: string;
  availability: string;
  maxSessions: number;
  osInfo: { arch: string; name: string; version: string };
  heartbeatPeriod: number;
  version: string;
  slots: Slot[];
}
interface Status {
  value: { ready: boolean; message: string; nodes: Node[] };
}

async function status(path = '/status'): Promise<Status> {
  const res = await fetch(`${grid.url}${path}`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  return (await res.json()) as Status;
}

const browsers = (s: Status) => s.value.nodes.map((n) => n.slots[0]?.stereotype.browserName).sort();
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe('Selenium Grid double', () => {
  it('answers /status in Grid 4’s wire format, one node per ready selenium-node pod', async () => {
    const body = await status();
    expect(Object.keys(body)).toEqual(['value']);
    expect(body.value).toMatchObject({ ready: true, message: 'Selenium Grid ready.' });
    expect(browsers(body)).toEqual(['chrome', 'chrome', 'firefox']);
    for (const node of body.value.nodes) {
      expect(node.id).toMatch(UUID);
      expect(node.uri).toMatch(/^http:\/\/[^/]+:5555$/);
      expect(node).toMatchObject({ availability: 'UP', maxSessions: 10, heartbeatPeriod: 60000 });
      expect(node.osInfo).toEqual({ arch: expect.any(String), name: 'Linux', version: expect.any(String) });
      expect(node.version).toMatch(/^4\.\d+\.\d+ \(revision \w+\)$/);
      expect(node.slots).toHaveLength(10);
      for (const slot of node.slots) {
        expect(Object.keys(slot).sort()).toEqual(['id', 'lastStarted', 'session', 'stereotype']);
        expect(slot.id.hostId).toBe(node.id);
        expect(slot.id.id).toMatch(UUID);
        expect(slot.lastStarted).toBe('1970-01-01T00:00:00Z');
        expect(slot.session).toBeNull();
        expect(slot.stereotype).toMatchObject({ browserName: expect.any(String), platformName: 'linux' });
      }
    }
    // Ids are stable between requests (they come from the pods), and the legacy path answers the same.
    expect((await status('/wd/hub/status')).value.nodes.map((n) => n.id)).toEqual(
      body.value.nodes.map((n) => n.id),
    );
    expect(grid.capacity()).toEqual({ slots: 30, active: 0, utilization: 0 });
  });

  it('follows kubectl scale of the node deployments', async () => {
    await scale('selenium-node-chrome', 5);
    expect(browsers(await status())).toEqual(['chrome', 'chrome', 'chrome', 'chrome', 'chrome', 'firefox']);
    await scale('selenium-node-firefox', 0);
    const after = await status();
    expect(browsers(after)).toEqual(['chrome', 'chrome', 'chrome', 'chrome', 'chrome']);
    expect(grid.capacity().slots).toBe(50);
  });

  it('is not ready, with no nodes, while no selenium-hub pod is ready', async () => {
    sim.faults.inject({ kind: 'crashLoop', namespace: 'aiwebtest', selector: 'app=selenium-hub' });
    await expect.poll(async () => (await status()).value.ready, { timeout: 5000 }).toBe(false);
    const down = await status();
    expect(down.value.message).toMatch(/^Selenium Grid not ready/);
    expect(down.value.message).toMatch(/selenium-hub/);
    expect(down.value.nodes).toEqual([]);
    expect(grid.capacity()).toEqual({ slots: 0, active: 0, utilization: 0 });
  });

  it('shows occupied slots with their sessions, and is not ready when every slot is taken', async () => {
    expect(grid.occupy(12, 'chrome')).toBe(12);
    expect(grid.capacity()).toEqual({ slots: 30, active: 12, utilization: 0.4 });
    const body = await status();
    const busy = body.value.nodes.flatMap((n) => n.slots.filter((s) => s.session).map((s) => ({ n, s })));
    expect(busy).toHaveLength(12);
    for (const { n, s } of busy) {
      expect(s.stereotype.browserName).toBe('chrome');
      expect(s.session?.sessionId).toMatch(/^[0-9a-f]{32}$/);
      expect(s.session?.capabilities).toMatchObject({ browserName: 'chrome' });
      expect(s.session?.uri).toBe(n.uri);
      expect(Date.parse(s.session?.start ?? '')).not.toBeNaN();
      expect(s.lastStarted).toBe(s.session?.start);
    }
    // Spread like the distributor: both chrome nodes take six.
    expect(body.value.nodes.map((n) => n.slots.filter((s) => s.session).length).sort()).toEqual([0, 6, 6]);
    expect(grid.occupy(20, 'chrome')).toBe(8); // only 8 chrome slots were left
    expect(grid.occupy(10)).toBe(10);
    const full = await status();
    expect(full.value).toMatchObject({ ready: false, message: 'Selenium Grid not ready.' });
    expect(grid.release(5)).toBe(5);
    expect(grid.capacity()).toMatchObject({ active: 25 });
    expect((await status()).value.ready).toBe(true);
    expect(grid.release()).toBe(25);
    expect(grid.sessions()).toEqual([]);
  });

  it('drops the sessions of a node whose pod goes away', async () => {
    grid.occupy(20, 'chrome');
    grid.occupy(3, 'firefox');
    expect(grid.sessions()).toHaveLength(23);
    await scale('selenium-node-chrome', 1);
    expect(grid.capacity()).toEqual({ slots: 20, active: 13, utilization: 13 / 20 });
    const pods = new Set(grid.sessions().map((s) => s.pod));
    expect(pods.size).toBe(2);
  });

  it('answers other paths with a WebDriver error and refuses bad options', async () => {
    const res = await fetch(`${grid.url}/session`, { method: 'POST' });
    expect(res.status).toBe(404);
    expect(((await res.json()) as Status & { value: { error: string } }).value.error).toBe('unknown command');
    await expect(startSeleniumGridDouble({ namespace: 'aiwebtest' })).rejects.toThrow(/store/);
    await expect(startSeleniumGridDouble({ simulator: sim, maxSessionsPerNode: 0 })).rejects.toThrow(
      /maxSessionsPerNode/,
    );
  });
});
