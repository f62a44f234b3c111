/**
 * The lab's control API, on 127.0.0.1 only: `/metrics` (the lab exporter Prometheus scrapes), `/health`,
 * the chaos catalog and the incidents in progress. `aiwebtest-lab chaos|heal|health` are its clients.
 * It breaks things on purpose, so it listens on the loopback interface and nowhere else.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import { z } from 'zod';
import { labHealth } from './lab-health';
import { createLabMetrics } from './lab-metrics';
import type { LabParts } from './lab-parts';
import { type Injected, SCENARIO_CATALOG, SCENARIOS, type ScenarioName } from './scenarios';

export interface LabControl {
  url: string;
  /** Incidents in progress, by scenario. */
  active(): ScenarioName[];
  /** Injects a scenario (what `POST /chaos/:scenario` does). */
  inject(name: ScenarioName): Promise<Injected>;
  /** Takes back every incident in progress (what `POST /heal` does). */
  healAll(): Promise<ScenarioName[]>;
  close(): Promise<void>;
}

const ScenarioParams = z.strictObject({ scenario: SCENARIOS });

function badRequest(error: z.ZodError) {
  return {
    error: {
      code: 'INVALID_INPUT',
      message: error.issues.map((i) => `${i.path.join('.') || '(request)'}: ${i.message}`).join('; '),
    },
  };
}

export async function startLabControl(parts: LabParts, options: { port: number }): Promise<LabControl> {
  const registry = createLabMetrics(parts);
  const incidents = new Map<ScenarioName, Injected>();
  // One chaos or heal at a time: two injections of one scenario racing would leave one undo unreachable.
  let queue: Promise<unknown> = Promise.resolve();
  const serially = <T>(work: () => Promise<T>): Promise<T> => {
    const next = queue.then(work, work);
    queue = next.catch(() => {});
    return next;
  };

  const inject = (name: ScenarioName) =>
    serially(async () => {
      const existing = incidents.get(name);
      if (existing) return existing;
      const injected = await SCENARIO_CATALOG[name].inject(parts);
      incidents.set(name, injected);
      return injected;
    });
  const heal = (names: ScenarioName[]) =>
    serially(async () => {
      const healed: ScenarioName[] = [];
      for (const name of names) {
        const injected = incidents.get(name);
        if (!injected) continue;
        await injected.undo();
        incidents.delete(name);
        healed.push(name);
      }
      return healed;
    });

  const app: FastifyInstance = Fastify({ logger: false });
  // It breaks things on purpose: a web page open in the developer's browser must not reach it (a simple
  // cross-origin POST needs no preflight). Browsers send Origin; the lab's own clients never do.
  app.addHook('onRequest', async (request, reply) => {
    if (request.headers.origin !== undefined)
      return reply
        .code(403)
        .send({ error: { code: 'FORBIDDEN', message: 'the lab control API takes no browser requests' } });
  });
  app.get('/metrics', async (_request, reply) =>
    reply.header('content-type', registry.contentType).send(await registry.metrics()),
  );
  app.get('/health', async (_request, reply) => {
    const report = await labHealth(parts);
    return reply.code(report.healthy ? 200 : 503).send({ ...report, incidents: [...incidents.keys()] });
  });
  app.get('/scenarios', async () => ({
    scenarios: SCENARIOS.options.map((name) => ({
      name,
      runbook: SCENARIO_CATALOG[name].runbook,
      description: SCENARIO_CATALOG[name].description,
      active: incidents.has(name),
    })),
  }));
  app.post('/chaos/:scenario', async (request, reply) => {
    const params = ScenarioParams.safeParse(request.params);
    if (!params.success) return reply.code(400).send(badRequest(params.error));
    const already = incidents.has(params.data.scenario);
    const injected = await inject(params.data.scenario);
    return reply.code(already ? 200 : 201).send({
      scenario: params.data.scenario,
      runbook: SCENARIO_CATALOG[params.data.scenario].runbook,
      description: injected.description,
      alreadyActive: already,
    });
  });
  app.post('/heal', async () => ({ healed: await heal([...incidents.keys()]) }));
  app.post('/heal/:scenario', async (request, reply) => {
    const params = ScenarioParams.safeParse(request.params);
    if (!params.success) return reply.code(400).send(badRequest(params.error));
    return { healed: await heal([params.data.scenario]) };
  });
  app.setErrorHandler((error, _request, reply) => {
    // The lab's own failures (a scenario that could not be injected) are reported, never crash the lab.
    const message = error instanceof Error ? error.message : String(error);
    reply.code(500).send({ error: { code: 'LAB_ERROR', message } });
  });

  await app.listen({ host: '127.0.0.1', port: options.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  return {
    url: `http://127.0.0.1:${port}`,
    active: () => [...incidents.keys()],
    inject,
    healAll: () => heal([...incidents.keys()]),
    close: async () => {
      await app.close();
    },
  };
}
