/**
 * The process under load for bench/service.bench.ts, forked by it: the runbook service (PostgreSQL store in
 * its own schema, an engine with one no-op runbook, one admin token) and a bare Fastify route, each on its
 * own port of 127.0.0.1 in this one process, so both answer from the same event loop and core budget.
 *
 * Kept out of the load generator's process: autocannon parsing 10 000s of responses a second on the same
 * event loop would be charged to whichever server is being measured.
 *
 * Talks to its parent over IPC only. Sends `ready` (ports, token, schema), answers `stop` with `stopped`
 * (row counts, for the parent's sanity checks) after dropping the schema; drops it too if the parent dies.
 */
import { randomBytes } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import { z } from 'zod';
import { finding } from '../../src/core/finding';
import { defineRunbook } from '../../src/core/runbook';
import { defineCheck } from '../../src/core/step';
import { Engine } from '../../src/engine/engine';
import { createServer } from '../../src/server/app';
import { hashToken } from '../../src/server/identity';
import { openStore } from '../../src/store/open-store';

/** What the service process tells the bench once both servers listen. */
export interface ServiceReady {
  type: 'ready';
  barePort: number;
  servicePort: number;
  /** The admin bearer token; random per run and never printed. */
  token: string;
  schema: string;
}

/** Rows the benchmark left in the store, reported just before the schema is dropped. */
export interface ServiceStopped {
  type: 'stopped';
  runs: number;
  steps: number;
  audit: number;
  /** Runs whose status is not `succeeded`: each would be a diagnose that answered 2xx but did not work. */
  unsucceeded: number;
}

/** A message from the parent. */
export type ServiceCommand = { type: 'stop' };

const URL = process.env.RUNBOOK_BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** One check returning an ok finding and nothing else: what is left is the service and the store. */
const noopRunbook = defineRunbook({
  id: 'noop',
  title: 'No-op diagnosis',
  severity: 'P3',
  input: z.object({}),
  async run({ step }) {
    await step.check(
      'noop',
      defineCheck({ kind: 'bench.noop', run: async () => finding('ok', 'nothing to see', null) }),
    );
  },
});

async function portOf(app: FastifyInstance): Promise<number> {
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (!address || typeof address === 'string') throw new Error('server has no TCP address');
  return address.port;
}

async function main() {
  if (!process.send) throw new Error('service-process.ts is forked by bench/service.bench.ts; run that');
  const send = (message: ServiceReady | ServiceStopped) => process.send?.(message);
  const schema = `bench_service_${process.pid}`;
  const token = randomBytes(24).toString('base64url');
  const store = await openStore({ url: URL, schema });
  const engine = new Engine({ store, runbooks: [noopRunbook] });
  const service = createServer({
    engine,
    tokens: [{ name: 'bench', sha256: hashToken(token), role: 'admin' }],
    // One identity sends every request here; the shipped 300 a minute would turn the run into 429s. A limit
    // it never reaches keeps the limiter's per-request cost in the figures, as in production.
    rateLimit: { max: 1_000_000, timeWindowMs: 60_000 },
  });
  const bare = Fastify();
  bare.get('/bare', async () => ({ ok: true, service: 'bare' }));

  let stopping: Promise<void> | undefined;
  const stop = (report: boolean) =>
    (stopping ??= (async () => {
      await Promise.allSettled([service.close(), bare.close()]);
      try {
        if (report) {
          const count = async (sql: string) => Number((await store.driver.query<{ n: string }>(sql))[0]?.n);
          send({
            type: 'stopped',
            runs: await count('SELECT count(*) AS n FROM runs'),
            steps: await count('SELECT count(*) AS n FROM steps'),
            audit: await count('SELECT count(*) AS n FROM audit'),
            unsucceeded: await count("SELECT count(*) AS n FROM runs WHERE status <> 'succeeded'"),
          });
        }
      } finally {
        await store.driver.query(`DROP SCHEMA ${schema} CASCADE`);
        await store.close();
        process.disconnect?.();
      }
    })());

  process.on('message', (message: ServiceCommand) => {
    if (message.type === 'stop') void stop(true);
  });
  // The parent crashed or was interrupted (Ctrl-C reaches the whole process group): still drop the schema.
  process.on('disconnect', () => void stop(false));
  process.on('SIGINT', () => void stop(false));

  const [servicePort, barePort] = await Promise.all([portOf(service), portOf(bare)]);
  send({ type: 'ready', barePort, servicePort, token, schema });
}

await main();
