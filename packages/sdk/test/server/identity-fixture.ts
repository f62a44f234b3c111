import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll } from 'vitest';
import { Engine } from '../../src/engine/engine';
import { createServer } from '../../src/server/app';
import { hashToken } from '../../src/server/identity';
import type { ServerOptions, TokenGrant } from '../../src/server/options';
import { fixRunbook, World } from '../support/runbooks';
import { postgresStore, type StoreUnderTest, uniqueSchema } from '../support/stores';
import { listen } from './http-client';
import { scaleRunbook } from './server-fixture';

/** Bearer tokens of the identity tests: personal ones and two Grafana app tokens. */
export const TOKENS = {
  vera: 'viewer-token-vera-0a1b2c',
  erin: 'editor-token-erin-3d4e5f',
  ada: 'admin-token-ada-6a7b8c',
  abe: 'admin-token-abe-9d0e1f',
  /** The Grafana app's token, granted admin: Grafana users keep their own org role. */
  grafana: 'grafana-app-token-5f5f5f',
  /** A Grafana app token granted only editor: it caps every Grafana user at editor. */
  grafanaCapped: 'grafana-capped-token-7e7e7e',
} as const;

const GRANTS: TokenGrant[] = [
  { name: 'vera', sha256: hashToken(TOKENS.vera), role: 'viewer' },
  { name: 'erin', sha256: hashToken(TOKENS.erin), role: 'editor' },
  { name: 'ada', sha256: hashToken(TOKENS.ada), role: 'admin' },
  { name: 'abe', sha256: hashToken(TOKENS.abe), role: 'admin' },
  { name: 'grafana-app', sha256: hashToken(TOKENS.grafana), role: 'admin', grafana: true },
  { name: 'grafana-capped', sha256: hashToken(TOKENS.grafanaCapped), role: 'editor', grafana: true },
];

/** The `X-Grafana-Context` header Grafana's plugin proxy would send for a user, with Grafana's extra keys. */
export function grafanaContext(login: string, orgRole: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    UserID: 42,
    UserUID: 'u-42',
    Login: login,
    Name: login.toUpperCase(),
    Email: `${login}@example.org`,
    OrgID: 1,
    OrgName: 'Main Org.',
    OrgRole: orgRole,
    IsServiceAccount: false,
    IsAnonymous: false,
    ...extra,
  });
}

/**
 * A PostgreSQL-backed service on a free port with {@link TOKENS}, the runbooks `fix-low` (applies without
 * approval), `fix-high` (needs a second person) and `scale-check`, and `options` for createServer.
 */
export function identityFixture(options: Omit<ServerOptions, 'engine' | 'tokens' | 'logger'> = {}) {
  const world = new World();
  const logLines: string[] = [];
  let sut: StoreUnderTest | undefined;
  let engine: Engine | undefined;
  let app: FastifyInstance | undefined;
  let client: Awaited<ReturnType<typeof listen>> | undefined;

  beforeAll(async () => {
    sut = await postgresStore(uniqueSchema('ident'));
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
      ...options,
      engine,
      tokens: GRANTS,
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
    get base() {
      return need(client, 'client').base;
    },
  };
}
