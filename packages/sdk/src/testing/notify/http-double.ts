import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { sendJson } from '../llm/double-server';

/** A failure a notification double answers instead of handling requests. */
export const InjectedFailure = z.object({
  /** 429 or a 5xx. */
  status: z.number().int().min(400).max(599),
  /** `Retry-After` in seconds, sent with the answer. @default none */
  retryAfterSeconds: z.number().nonnegative().optional(),
  /** How many requests get it. @default 1 */
  times: z.number().int().positive().default(1),
});
export type InjectedFailure = z.infer<typeof InjectedFailure>;
/** {@link InjectedFailure} as written by users. */
export type InjectedFailureInput = z.input<typeof InjectedFailure>;

/** The first 12 hex characters of a secret's SHA-256: lets tests tell keys apart without the double keeping them. */
export function secretFingerprint(secret: string): string {
  return createHash('sha256').update(secret).digest('hex').slice(0, 12);
}

/** One exchange as the plumbing hands it to a double. */
export interface Exchange {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  /** The raw body text. */
  body: string;
  res: ServerResponse;
  /** Sets the log entry's status when answering. */
}

/** The plumbing shared by the notification doubles: listening on 127.0.0.1, injected failures, closing. */
export interface HttpDouble {
  readonly url: string;
  /** The next `times` requests get `status` (with `Retry-After` if given), before any validation. */
  fail(failure: InjectedFailureInput): void;
  close(): Promise<void>;
}

/** Starts a server that answers injected failures first and hands the rest to `handle`. */
export async function startHttpDouble(
  host: string,
  port: number,
  handle: (exchange: Exchange) => void,
  onFailure: (exchange: Exchange, status: number) => void,
): Promise<HttpDouble> {
  const failures: InjectedFailure[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= 1 << 20) chunks.push(chunk);
    });
    req.on('end', () => {
      const exchange: Exchange = {
        method: (req.method ?? 'GET').toUpperCase(),
        path: (req.url ?? '/').split('?')[0] ?? '/',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
        res,
      };
      const failure = failures[0];
      if (failure) {
        failure.times--;
        if (failure.times <= 0) failures.shift();
        onFailure(exchange, failure.status);
        sendJson(
          res,
          failure.status,
          failure.status === 429
            ? { status: 'throttle event', message: 'Requests for this service are arriving too quickly.' }
            : { status: 'error', message: 'Internal Server Error' },
          failure.retryAfterSeconds === undefined ? {} : { 'retry-after': String(failure.retryAfterSeconds) },
        );
        return;
      }
      handle(exchange);
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
  const address = server.address() as AddressInfo;
  return {
    url: `http://${host}:${address.port}`,
    fail(failure) {
      failures.push(InjectedFailure.parse(failure));
    },
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

/** Sends `text` as plain text (Slack's answers). */
export function sendText(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

/** The options every notification double takes. */
export const DoubleListenOptions = {
  /** @default "127.0.0.1" */
  host: z.string().min(1).default('127.0.0.1'),
  /** 0 picks a free port. @default 0 */
  port: z.number().int().min(0).max(65535).default(0),
};

export { sendJson };
