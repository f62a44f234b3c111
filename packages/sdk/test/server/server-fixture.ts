import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll } from 'vitest';
import { z } from 'zod';
import { finding } from '../../src/core/finding';
import { defineRunbook } from '../../src/core/runbook';
import { defineCheck } from '../../src/core/step';
import { Engine } from '../../src/engine/engine';
import { createServer } from '../../src/server/app';
import { hashToken } from '../../src/server/identity';
import type { Role } from '../../src/server/options';
import { fixRunbook, World } from '../support/runbooks';
import { postgresStore, type StoreUnderTest, uniqueSchema } from '../support/stores';
import { listen } from './http-client';

/** Bearer tokens of the test identities. */
export const TOKENS = {
  vera: 'viewer-token-vera',
  erin: 'editor-token-erin',
  ada: 'admin-token-ada',
  abe: 'admin-token-abe',
} as const;
const ROLES: Record<keyof typeof TOKENS, Role> = {
  vera: 'viewer',
  erin: 'editor',
  ada: 'admin',
  abe: 'admin',
};

/** A runbook with a nested, typed input, to see field paths in errors. */
export function scaleRunbook() {
  return defineRunbook({
    id: 'scale-check',
    title: 'Check a deployment scale',
    description: 'Reports the replica count it was given.',
    severity: 'P3',
    input: z.object({ namespace: z.string().min(1), replicas: z.number().int().min(0).default(1) }),
    triggers: [{ kind: 'alert', match: { alertname: 'ScaleDrift' } }],
    async run({ input, step }) {
      await step.check(
        'replicas',
        defineCheck({
          kind: 'test.replicas',
          run: async () =>
            finding('ok', `${input.namespace} has ${input.replicas}`, { replicas: input.replicas }),
        }),
      );
    },
  });
}

/**
 * For a file of service tests: a PostgreSQL store in its own schema, an engine with test runbooks
 * (`fix-low` applies without approval, `fix-high` needs a second person), and the service on a free port.
 */
export function serverFixture() {
  const world = new World();
  const logLines: string[] = [];
  let sut: StoreUnderTest | undefined;
  let engine: Engine | undefined;
  let app: FastifyInstance | undefined;
  let client: Awaited<ReturnType<typeof listen>> | undefined;

  beforeAll(async () => {
    sut = await postgresStore(uniqueSchema('srv'));
    engine = new Engine({
      store: sut.store,
      leaseTtl: '5s',
      runbooks: [
        fixRunbook(world, 'fix-low'),
        fixRunbook(world, 'fix-high', { risk: 'high' }),
        scaleRunbook(),
      ],
    });
    app = createServer({
      engine,
      tokens: Object.entries(TOKENS).map(([name, token]) => ({
        name,
        sha256: hashToken(token),
        role: ROLES[name as keyof typeof TOKENS],
      })),
      logger: {
        level: 'info',
        stream: new Writable({
          write(chunk, _encoding, done) {
            logLines.push(String(chunk));
            done();
          },
        }),
      },
    });
    // A route that crashes with a secret in its message, to see what a 500 reveals.
    app.get('/boom', async () => {
      throw new Error('connect failed: password=hunter2');
    });
    client = await listen(app);
  });
  afterAll(async () => {
    await app?.close();
    await sut?.dispose();
  });

  const need = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) throw new Error(`${what} is set up in beforeAll; use it inside tests`);
    return value;
  };
  return {
    world,
    logLines,
    get engine() {
      return need(engine, 'engine');
    },
    get store() {
      return need(sut, 'store').store;
    },
    get call() {
      return need(client, 'client').call;
    },
  };
}
