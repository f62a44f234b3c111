import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { InputValidationError } from '../../core/errors';
import { readBody, sendJson } from '../llm/double-server';

/** A server error the double answers instead of serving (a registry behind a failing load balancer). */
export const MlDoubleFault = z.strictObject({
  /** The HTTP status to answer. @default 503 */
  status: z.number().int().min(500).max(599).default(503),
  /** Only requests whose path starts with this, e.g. `/api/2.0/mlflow/registered-models/alias`. @default every path */
  path: z.string().startsWith('/').optional(),
  /** Only requests with this method. @default every method */
  method: z.enum(['GET', 'POST', 'PATCH', 'DELETE']).optional(),
  /** How many matching requests it hits before it clears itself. @default until cleared */
  times: z.number().int().positive().optional(),
});
/** A fault as tests write it. */
export type MlDoubleFault = z.input<typeof MlDoubleFault>;

/** One request an ML double received, for assertions. Credentials are never kept. */
export interface MlLoggedRequest {
  at: number;
  method: string;
  /** The path without the query. */
  path: string;
  /** The query parameters. */
  query: Record<string, string>;
  /** The parsed JSON body, if any (a `password` member is replaced by `[REDACTED]`). */
  body?: unknown;
  /** The kind of credentials it carried. */
  auth?: 'bearer' | 'basic';
  /** The HTTP status it got. */
  status: number;
  /** The injected fault's status, when one answered. */
  fault?: number;
}

/** The injected faults of a double. */
export class MlDoubleFaults {
  readonly #entries = new Map<string, z.output<typeof MlDoubleFault> & { hits: number }>();

  /** Validates and adds a fault; returns its id and a `clear()`. */
  inject(fault: MlDoubleFault): { id: string; clear(): void } {
    const parsed = MlDoubleFault.safeParse(fault);
    if (!parsed.success) {
      throw new InputValidationError(
        'ML double fault',
        parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
      );
    }
    const id = `fault-${randomUUID().slice(0, 8)}`;
    this.#entries.set(id, { ...parsed.data, hits: 0 });
    return { id, clear: () => this.#entries.delete(id) };
  }

  clearAll(): void {
    this.#entries.clear();
  }

  /** The status of the first fault matching the request (counting its hit), if any. */
  take(method: string, path: string): number | undefined {
    for (const [id, f] of this.#entries) {
      if (f.method !== undefined && f.method !== method) continue;
      if (f.path !== undefined && !path.startsWith(f.path)) continue;
      f.hits++;
      if (f.times !== undefined && f.hits >= f.times) this.#entries.delete(id);
      return f.status;
    }
    return undefined;
  }
}

/** What a handler gets for one request. */
export interface MlExchange {
  req: IncomingMessage;
  res: ServerResponse;
  method: string;
  path: string;
  query: Record<string, string>;
  /** The JSON body: `undefined` when there was none, the symbol {@link NOT_JSON} when it did not parse. */
  body: unknown;
  entry: MlLoggedRequest;
  send(status: number, body: unknown): undefined;
}

/** The body of a request that was not JSON. */
export const NOT_JSON = Symbol('not JSON');

/** The plumbing the ML doubles share: listening, the request log, faults, closing. */
export interface MlDoubleServer {
  readonly url: string;
  readonly requests: readonly MlLoggedRequest[];
  readonly faults: MlDoubleFaults;
  clearRequests(): void;
  close(): Promise<void>;
}

/**
 * Starts an HTTP server on `host:port` (0: a free port) that reads each request's JSON body, logs it, answers
 * an injected fault with `faultBody(status)`, and otherwise hands it to `handle`.
 */
export async function startMlDoubleServer(
  host: string,
  port: number,
  faultBody: (status: number) => unknown,
  handle: (exchange: MlExchange) => Promise<void> | void,
): Promise<MlDoubleServer> {
  const log: MlLoggedRequest[] = [];
  const faults = new MlDoubleFaults();
  const server = createServer((req, res) => {
    void (async () => {
      const method = (req.method ?? 'GET').toUpperCase();
      const url = new URL(req.url ?? '/', 'http://double');
      const query = Object.fromEntries(url.searchParams);
      const authorization = req.headers.authorization ?? '';
      const entry: MlLoggedRequest = { at: Date.now(), method, path: url.pathname, query, status: 0 };
      if (/^bearer /i.test(authorization)) entry.auth = 'bearer';
      else if (/^basic /i.test(authorization)) entry.auth = 'basic';
      log.push(entry);
      const text = await readBody(req);
      let body: unknown;
      if (text !== undefined && text.trim() !== '') {
        try {
          body = JSON.parse(text);
          entry.body = withoutPassword(body);
        } catch {
          body = NOT_JSON;
        }
      }
      const send = (status: number, payload: unknown): undefined => {
        entry.status = status;
        sendJson(res, status, payload);
      };
      const fault = faults.take(method, url.pathname);
      if (fault !== undefined) {
        entry.fault = fault;
        return send(fault, faultBody(fault));
      }
      await handle({ req, res, method, path: url.pathname, query, body, entry, send });
    })().catch(() => {
      if (!res.headersSent) res.destroy();
    });
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  let closed = false;
  return {
    url: `http://${host}:${bound}`,
    requests: log,
    faults,
    clearRequests() {
      log.length = 0;
    },
    close() {
      if (closed) return Promise.resolve();
      closed = true;
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

function withoutPassword(body: unknown): unknown {
  if (!body || typeof body !== 'object' || Array.isArray(body)) return body;
  const copy = { ...(body as Record<string, unknown>) };
  if ('password' in copy) copy.password = '[REDACTED]';
  return copy;
}
