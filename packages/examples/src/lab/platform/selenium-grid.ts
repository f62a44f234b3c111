import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { InputValidationError } from '@aiwebtest/runbooks';
import type { KubeObject, ObjectStore } from '@aiwebtest/runbooks/testing';
import { z } from 'zod';
import { BROWSERS, type Browser, PLATFORM_NAMESPACE, SELENIUM_HUB } from './manifests';
import { readyPods } from './platform-status';

/**
 * A Selenium Grid 4 hub's `/status` endpoint, backed by the simulated cluster: one Grid node per ready
 * `app=selenium-node` pod, so `kubectl scale deployment/selenium-node-chrome` changes the Grid's capacity
 * and a crashed hub makes the Grid not ready, as the manual's runbooks 3 and 9 expect. Sessions are
 * simulated through the handle, so the lab can fill the Grid the way running tests do.
 */

/** What the handle's `store` or `simulator` option must offer: the simulator's object store. */
const StoreLike = z.custom<ObjectStore>(
  (v) => typeof v === 'object' && v !== null && typeof (v as { list?: unknown }).list === 'function',
  { message: 'expected the Kubernetes simulator’s ObjectStore' },
);

/** Options of {@link startSeleniumGridDouble}. Give `store` or `simulator`. */
export const SeleniumGridDoubleOptions = z
  .object({
    store: StoreLike.optional(),
    simulator: z.object({ store: StoreLike }, { message: 'expected a Kubernetes simulator' }).optional(),
    /** @default "aiwebtest" */
    namespace: z.string().min(1).default(PLATFORM_NAMESPACE),
    /** @default "127.0.0.1" */
    host: z.string().min(1).default('127.0.0.1'),
    /** 0 picks a free port. @default 0 */
    port: z.number().int().min(0).max(65535).default(0),
    /** Slots per node: the manual's "max 10 concurrent sessions per node". @default 10 */
    maxSessionsPerNode: z.number().int().min(1).max(1000).default(10),
  })
  .refine((o) => o.store !== undefined || o.simulator !== undefined, {
    message: 'give store or simulator',
    path: ['store'],
  });
export type SeleniumGridDoubleOptions = z.input<typeof SeleniumGridDoubleOptions>;

/** A simulated browser session on one node. */
export interface GridSession {
  sessionId: string;
  browser: Browser;
  /** The Grid node id (stable per pod). */
  nodeId: string;
  /** The pod backing the node. */
  pod: string;
  /** When the session started (ISO 8601). */
  start: string;
}

/** Slots, running sessions, and their ratio (0 when there are no slots). */
export interface GridCapacity {
  slots: number;
  active: number;
  utilization: number;
}

/** A running Grid double. */
export interface SeleniumGridDouble {
  /** Base URL, e.g. `http://127.0.0.1:4444`; `/status` and `/wd/hub/status` answer under it. */
  url: string;
  /** Starts up to `count` sessions of `browser` (any browser when omitted) on free slots; returns how many started. */
  occupy(count: number, browser?: Browser): number;
  /** Ends `count` sessions, oldest first (every session when omitted); returns how many ended. */
  release(count?: number): number;
  /** The running sessions, oldest first. */
  sessions(): GridSession[];
  capacity(): GridCapacity;
  close(): Promise<void>;
}

const GRID_VERSION = '4.27.0 (revision d6e718d134)';
const BROWSER_VERSIONS: Record<Browser, string> = { chrome: '131.0', firefox: '133.0' };
/** The Grid reports slots that never ran a session with the epoch as their last start. */
const NEVER = '1970-01-01T00:00:00Z';

interface GridNode {
  id: string;
  pod: string;
  uri: string;
  browser: Browser;
  slotIds: string[];
}

interface SlotState {
  lastStarted: string;
  session?: GridSession;
  /** Start order: sessions started in one call share a millisecond, so `start` alone cannot order them. */
  order: number;
}

/** A UUID-shaped id derived from `seed`, so a pod keeps its node and slot ids across requests. */
function uuidFrom(seed: string): string {
  const h = createHash('sha256').update(seed).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

function stereotypeOf(browser: Browser): Record<string, unknown> {
  return {
    browserName: browser,
    browserVersion: BROWSER_VERSIONS[browser],
    platformName: 'linux',
    'se:noVncPort': 7900,
    'se:vncEnabled': true,
  };
}

function capabilitiesOf(session: GridSession): Record<string, unknown> {
  return {
    acceptInsecureCerts: false,
    browserName: session.browser,
    browserVersion: BROWSER_VERSIONS[session.browser],
    platformName: 'linux',
    pageLoadStrategy: 'normal',
    'se:vncEnabled': true,
  };
}

/**
 * Starts the Grid double on `host:port`. Every request reads the cluster anew: nodes are the Ready
 * `app=selenium-node` pods (browser from their `browser` label) and the Grid is ready only while a
 * `selenium-hub` pod is Ready and some node has a free slot (Grid 4 reports `ready` as "has capacity").
 *
 * @throws InputValidationError naming the option that is wrong.
 */
export async function startSeleniumGridDouble(input: SeleniumGridDoubleOptions): Promise<SeleniumGridDouble> {
  const parsed = SeleniumGridDoubleOptions.safeParse(input);
  if (!parsed.success) {
    throw new InputValidationError(
      'Selenium Grid double options',
      parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
    );
  }
  const options = parsed.data;
  const store = (options.store ?? options.simulator?.store) as ObjectStore;
  const { namespace, maxSessionsPerNode } = options;
  /** Slot state by slot id; forgotten (with its session) when the node's pod is no longer Ready. */
  const slots = new Map<string, SlotState>();

  const hubReady = () => readyPods(store, namespace, { app: SELENIUM_HUB }).length > 0;

  /** The current nodes, after dropping the slots (and sessions) of nodes that went away. */
  const currentNodes = (): GridNode[] => {
    const nodes = readyPods(store, namespace, { app: 'selenium-node' }).flatMap((pod) => {
      const node = nodeOf(pod, maxSessionsPerNode);
      return node ? [node] : [];
    });
    const live = new Set(nodes.flatMap((n) => n.slotIds));
    for (const id of [...slots.keys()]) if (!live.has(id)) slots.delete(id);
    return nodes;
  };

  /** What the hub knows: nothing while no hub pod is ready (its node registry went with it). */
  const visibleNodes = (): GridNode[] => {
    const nodes = currentNodes();
    return hubReady() ? nodes : [];
  };

  const activeSessions = (): GridSession[] => {
    const visible = new Set(visibleNodes().flatMap((n) => n.slotIds));
    return [...slots.entries()]
      .filter(([id, s]) => s.session && visible.has(id))
      .sort(([, a], [, b]) => a.order - b.order)
      .flatMap(([, s]) => (s.session ? [s.session] : []));
  };

  const statusBody = () => {
    const nodes = visibleNodes();
    const hub = hubReady();
    const json = nodes.map((n) => nodeJson(n, slots, maxSessionsPerNode));
    const hasCapacity = nodes.some((n) => n.slotIds.some((id) => !slots.get(id)?.session));
    const ready = hub && hasCapacity;
    const message = ready
      ? 'Selenium Grid ready.'
      : hub
        ? 'Selenium Grid not ready.'
        : `Selenium Grid not ready: no ${SELENIUM_HUB} pod is ready.`;
    return { value: { ready, message, nodes: json } };
  };

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && (path === '/status' || path === '/wd/hub/status')) {
      send(res, 200, statusBody());
      return;
    }
    // Grid answers unknown routes with a W3C WebDriver error body.
    send(res, 404, {
      value: {
        error: 'unknown command',
        message: `Unable to find handler for (${req.method}) ${path}`,
        stacktrace: '',
      },
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;

  let sequence = 0;
  return {
    url: `http://${host}:${address.port}`,
    occupy(count, browser) {
      const n = z.number().int().min(0, 'count: expected 0 or more').parse(count);
      if (browser !== undefined)
        z.enum(BROWSERS, { message: 'browser: expected chrome or firefox' }).parse(browser);
      const nodes = visibleNodes().filter((node) => browser === undefined || node.browser === browser);
      let started = 0;
      for (; started < n; started++) {
        // Like the Grid's distributor: the node with the most free slots takes the next session.
        const free = (node: GridNode) => node.slotIds.filter((id) => !slots.get(id)?.session);
        const target = [...nodes].sort((a, b) => free(b).length - free(a).length)[0];
        const slotId = target ? free(target)[0] : undefined;
        if (!target || slotId === undefined) break;
        const start = new Date().toISOString();
        const session: GridSession = {
          sessionId: randomBytes(16).toString('hex'),
          browser: target.browser,
          nodeId: target.id,
          pod: target.pod,
          start,
        };
        slots.set(slotId, { lastStarted: start, session, order: sequence++ });
      }
      return started;
    },
    release(count) {
      const running = activeSessions();
      const n =
        count === undefined
          ? running.length
          : z.number().int().min(0, 'count: expected 0 or more').parse(count);
      const ending = new Set(running.slice(0, n).map((s) => s.sessionId));
      for (const state of slots.values()) {
        if (state.session && ending.has(state.session.sessionId)) delete state.session;
      }
      return ending.size;
    },
    sessions: () => activeSessions().map((s) => ({ ...s })),
    capacity() {
      const nodes = visibleNodes();
      const total = nodes.length * maxSessionsPerNode;
      const active = nodes.flatMap((n) => n.slotIds).filter((id) => slots.get(id)?.session).length;
      return { slots: total, active, utilization: total === 0 ? 0 : active / total };
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((e) => (e ? reject(e) : resolve()));
      }),
  };
}

function nodeOf(pod: KubeObject, maxSessions: number): GridNode | undefined {
  const browser = pod.metadata.labels?.browser;
  if (!BROWSERS.includes(browser as Browser)) return undefined;
  const id = uuidFrom(`node:${pod.metadata.uid}`);
  const ip = (pod.status as { podIP?: string } | undefined)?.podIP ?? pod.metadata.name;
  return {
    id,
    pod: pod.metadata.name,
    uri: `http://${ip}:5555`,
    browser: browser as Browser,
    slotIds: Array.from({ length: maxSessions }, (_, i) => uuidFrom(`slot:${pod.metadata.uid}:${i}`)),
  };
}

function nodeJson(node: GridNode, slots: Map<string, SlotState>, maxSessions: number) {
  const stereotype = stereotypeOf(node.browser);
  return {
    id: node.id,
    uri: node.uri,
    maxSessions,
    osInfo: { arch: 'amd64', name: 'Linux', version: '6.1.0-28-amd64' },
    heartbeatPeriod: 60000,
    availability: 'UP',
    version: GRID_VERSION,
    slots: node.slotIds.map((slotId) => {
      const state = slots.get(slotId);
      const session = state?.session;
      return {
        id: { hostId: node.id, id: slotId },
        lastStarted: state?.lastStarted ?? NEVER,
        session: session
          ? {
              capabilities: capabilitiesOf(session),
              sessionId: session.sessionId,
              start: session.start,
              stereotype,
              uri: node.uri,
            }
          : null,
        stereotype,
      };
    }),
  };
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-cache',
  });
  res.end(text);
}
