import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll } from 'vitest';
import { Engine } from '../../src/engine/engine';
import { createServer } from '../../src/server/app';
import { hashToken } from '../../src/server/identity';
import type { Role, ServerOptions } from '../../src/server/options';
import { fixRunbook, World } from '../support/runbooks';
import { postgresStore, type StoreUnderTest, uniqueSchema } from '../support/stores';
import { scaleRunbook, TOKENS } from './server-fixture';

/** A response with its headers. */
export interface LiveReply {
  status: number;
  headers: Record<string, string>;
  body: unknown;
  text: string;
}

const ROLES: Record<keyof typeof TOKENS, Role> = {
  vera: 'viewer',
  erin: 'editor',
  ada: 'admin',
  abe: 'admin',
};

/**
 * Like `serverFixture` (same runbooks and tokens, PostgreSQL in its own schema), and also gives the base
 * URL (to read event streams), response headers, and the app (to close it while a stream is open).
 * `options`: more options of `createServer` (event stream timing and caps, timeouts).
 */
export function liveServer(options: Omit<ServerOptions, 'engine' | 'tokens' | 'logger'> = {}) {
  const world = new World();
  const logLines: string[] = [];
  let sut: StoreUnderTest | undefined;
  let engine: Engine | undefined;
  let app: FastifyInstance | undefined;
  let base: string | undefined;

  beforeAll(async () => {
    sut = await postgresStore(uniqueSchema('live'));
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
    await app.listen({ port: 0, host: '127.0.0.1' });
    const address = app.server.address();
    if (!address || typeof address === 'string') throw new Error('server has no TCP address');
    base = `http://127.0.0.1:${address.port}`;
  });
  afterAll(async () => {
    await app?.close();
    await sut?.dispose();
  });

  const need = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) throw new Error(`${what} is set up in beforeAll; use it inside tests`);
    return value;
  };

  async function call(
    method: string,
    path: string,
    options: { token?: string; body?: unknown; headers?: Record<string, string> } = {},
  ): Promise<LiveReply> {
    const headers: Record<string, string> = { ...options.headers };
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    const response = await fetch(`${need(base, 'base')}${path}`, {
      method,
      headers,
      ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
    });
    const text = await response.text();
    const isJson = response.headers.get('content-type')?.includes('application/json') ?? false;
    return {
      status: response.status,
      headers: Object.fromEntries(response.headers.entries()),
      text,
      body: isJson && text ? JSON.parse(text) : undefined,
    };
  }

  return {
    world,
    logLines,
    call,
    get base() {
      return need(base, 'base');
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
