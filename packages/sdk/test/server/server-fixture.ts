import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll } from 'vitest';
import { z } from 'zod';
import { finding } from '../../src/core/finding';
import { defineRunbook, type Runbook } from '../../src/core/runbook';
import { defineCheck } from '../../src/core/step';
import { Engine, type EngineOptions } from '../../src/engine/engine';
import { createServer } from '../../src/server/app';
import { hashToken } from '../../src/server/identity';
import type { Role, ServerOptions, TokenGrant } from '../../src/server/options';
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

/** The test identities' roles. */
const ROLES: Record<keyof typeof TOKENS, Role> = {
  vera: 'viewer',
  erin: 'editor',
  ada: 'admin',
  abe: 'admin',
};

/** Grants for the test identities (vera a viewer, erin an editor, ada and abe admins) with these tokens. */
export function personalGrants(tokens: Record<keyof typeof TOKENS, string>): TokenGrant[] {
  return Object.entries(ROLES).map(([name, role]) => ({
    name,
    sha256: hashToken(tokens[name as keyof typeof TOKENS]),
    role,
  }));
}
const GRANTS = personalGrants(TOKENS);

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

/** The test runbooks: `fix-low` applies without approval, `fix-high` needs a second person, `scale-check`. */
export function testRunbooks(world: World): Runbook[] {
  return [fixRunbook(world, 'fix-low'), fixRunbook(world, 'fix-high', { risk: 'high' }), scaleRunbook()];
}

/** Logger options for `createServer`/`serve` that keep every log line in `lines`, to assert what is logged. */
export function captureLog(lines: string[]) {
  return {
    level: 'info',
    stream: new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    }),
  };
}

/** A route that crashes with a secret in its message, to see what a 500 reveals. */
export function addBoomRoute(app: FastifyInstance): void {
  app.get('/boom', async () => {
    throw new Error('connect failed: password=hunter2');
  });
}

/** Options of {@link serverFixture}. */
export interface ServerFixtureOptions {
  /** Prefix of the PostgreSQL schema's name. @default 'srv' */
  schema?: string;
  /** The engine's runbooks, made with the fixture's world. @default {@link testRunbooks} */
  runbooks?: (world: World) => Runbook[];
  /** More options of the engine (budgets, …). @default { leaseTtl: '5s' } */
  engine?: Omit<EngineOptions, 'store' | 'runbooks'>;
  /** The accepted tokens. @default the grants of {@link TOKENS} */
  tokens?: TokenGrant[];
  /** More options of `createServer` (event streams, rate limits, metrics registry, timeouts, …). @default {} */
  server?: Omit<ServerOptions, 'engine' | 'tokens' | 'logger'>;
  /** Called with the app before it listens, to add routes. */
  setup?: (app: FastifyInstance) => void;
}

/**
 * For a file of service tests: a PostgreSQL store in its own schema, an engine with test runbooks
 * (by default {@link testRunbooks}), and the service on a free port of 127.0.0.1 with {@link TOKENS},
 * its log lines kept in `logLines`. Everything is set up in `beforeAll` and closed in `afterAll`.
 */
export function serverFixture(options: ServerFixtureOptions = {}) {
  const world = new World();
  const logLines: string[] = [];
  let sut: StoreUnderTest | undefined;
  let engine: Engine | undefined;
  let app: FastifyInstance | undefined;
  let client: Awaited<ReturnType<typeof listen>> | undefined;

  beforeAll(async () => {
    sut = await postgresStore(uniqueSchema(options.schema ?? 'srv'));
    engine = new Engine({
      leaseTtl: '5s',
      ...options.engine,
      store: sut.store,
      runbooks: (options.runbooks ?? testRunbooks)(world),
    });
    app = createServer({
      ...options.server,
      engine,
      tokens: options.tokens ?? GRANTS,
      logger: captureLog(logLines),
    });
    options.setup?.(app);
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
    /** A JSON request to the service over real HTTP (see `listen`). */
    call: (...args: Parameters<Awaited<ReturnType<typeof listen>>['call']>) =>
      need(client, 'client').call(...args),
    get base() {
      return need(client, 'client').base;
    },
    get port() {
      return need(client, 'client').port;
    },
    get app() {
      return need(app, 'app');
    },
    get engine() {
      return need(engine, 'engine');
    },
    get store() {
      return need(sut, 'store').store;
    },
  };
}
