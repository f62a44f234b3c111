import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { LlmFaults } from './llm-faults';

/** A model's answer in a double: the text to send back for a chat. */
export type DoubleAnswer = (chat: {
  model: string;
  messages: readonly { role: string; content?: unknown }[];
}) => string;

/** The options every LLM double takes: its answer and where it listens. */
export const DoubleServerOptions = {
  /** The answer's text. @default `[<provider> <model>] <the last user message>` */
  answer: z.custom<DoubleAnswer>((v) => typeof v === 'function', 'answer must be a function').optional(),
  /** @default "127.0.0.1" */
  host: z.string().min(1).default('127.0.0.1'),
  /** 0 picks a free port. @default 0 */
  port: z.number().int().min(0).max(65535).default(0),
};

/** One request a double received, for assertions. Never holds an API key: `keyFingerprint` is its SHA-256 prefix. */
export interface LoggedRequest {
  /** When it arrived (ms since the epoch). */
  at: number;
  method: string;
  path: string;
  /** `apiKeyFingerprint(key)` of the bearer key it carried, if any. */
  keyFingerprint?: string;
  /** The model the body asked for, if it was a chat request. */
  model?: string;
  /** The HTTP status it got; 0 when the connection was destroyed unanswered (an outage). */
  status: number;
  /** The injected fault that decided the answer, if one did. */
  fault?: 'outage' | 'latency' | 'rateLimit' | 'serverError';
  /** True when the client closed the connection before the answer was sent (an abort or a timeout of the client). */
  abandoned?: boolean;
}

/** What a double's handler gets for one request. */
export interface DoubleExchange {
  req: IncomingMessage;
  res: ServerResponse;
  method: string;
  path: string;
  /** The log entry of this request: the handler fills in `keyFingerprint`, `model`, `fault`; `status` is set on send. */
  entry: LoggedRequest;
  /** Resolves after `ms`, or rejects when the double closes. */
  wait(ms: number): Promise<void>;
}

/** The HTTP plumbing of the LLM doubles: listening, outages, the request log, closing. */
export interface DoubleServer {
  readonly url: string;
  readonly faults: LlmFaults;
  readonly requests: readonly LoggedRequest[];
  clearRequests(): void;
  close(): Promise<void>;
}

/** Starts a server on `host:port` (0: a free port) that hands every request to `handle`, minding the faults. */
export async function startDoubleServer(
  host: string,
  port: number,
  keysAllowed: boolean,
  handle: (exchange: DoubleExchange) => Promise<void>,
): Promise<DoubleServer> {
  const log: LoggedRequest[] = [];
  const closing = new AbortController();
  let listening = false;
  let closed = false;
  let boundPort = port;

  const server: Server = createServer((req, res) => {
    const method = (req.method ?? 'GET').toUpperCase();
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const entry: LoggedRequest = { at: Date.now(), method, path, status: 0 };
    log.push(entry);
    if (faults.outage() === 'reset') {
      entry.fault = 'outage';
      req.socket.destroy();
      return;
    }
    res.on('finish', () => {
      entry.status = res.statusCode;
    });
    res.on('close', () => {
      if (!res.writableFinished && !closed) entry.abandoned = true;
    });
    const wait = (ms: number) => sleep(ms, undefined, { signal: closing.signal });
    handle({ req, res, method, path, entry, wait }).catch(() => {
      // The double is closing (a wait was aborted) or the client went away: nothing left to answer.
      if (!res.headersSent && !res.destroyed) res.destroy();
    });
  });
  // Longer than clients keep idle connections (undici: 4 s), so the double never closes one a client is just
  // reusing: that race makes clients silently retry, and a test counting requests would see one twice.
  server.keepAliveTimeout = 65_000;

  const listen = (): Promise<void> =>
    new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(boundPort, host, () => {
        server.off('error', reject);
        listening = true;
        boundPort = (server.address() as AddressInfo).port;
        resolve();
      });
    });

  // Called synchronously by inject/clear: closing the listening socket (and listening again on the same port)
  // takes effect before the caller's next line, so a test needs no wait.
  const onOutageChange = () => {
    if (closed) return;
    const refuse = faults.outage() === 'refuse';
    if (refuse && listening) {
      listening = false;
      server.close();
      server.closeAllConnections();
    } else if (!refuse && !listening) {
      listening = true;
      server.listen(boundPort, host);
    }
    // A `reset` outage needs nothing here: a request on a connection kept alive from before still reaches the
    // handler, which destroys it (and logs it), just like one on a new connection.
  };
  const faults = new LlmFaults(onOutageChange, keysAllowed);

  await listen();
  // Listening again after a `refuse` outage happens in the background: a failure (the port was taken meanwhile)
  // leaves the double refusing, which a test sees at once, rather than an unhandled 'error' event.
  server.on('error', () => {
    listening = false;
  });
  return {
    url: `http://${host}:${boundPort}`,
    faults,
    requests: log,
    clearRequests() {
      log.length = 0;
    },
    close() {
      if (closed) return Promise.resolve();
      closed = true;
      closing.abort();
      return new Promise<void>((resolve) => {
        if (!listening) {
          server.closeAllConnections();
          resolve();
          return;
        }
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

/** Reads a request body of at most `limit` bytes as text. */
export async function readBody(req: IncomingMessage, limit = 1 << 20): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Sends `body` as JSON with `status` and extra headers. */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

/** The text of the last `user` message of a chat (what the doubles answer from), or `""`. */
export function lastUserText(messages: readonly { role: string; content?: unknown }[]): string {
  for (let i = messages.length - 1; i >= 0; i--) {
    const message = messages[i];
    if (message?.role !== 'user') continue;
    const content = message.content;
    if (typeof content === 'string') return content;
    if (Array.isArray(content))
      return content
        .map((part) =>
          typeof (part as { text?: unknown })?.text === 'string' ? (part as { text: string }).text : '',
        )
        .join('');
  }
  return '';
}

/** A rough token count (about four characters a token), as the doubles report usage. */
export function tokenCount(text: string): number {
  return text.length === 0 ? 0 : Math.max(1, Math.ceil(text.length / 4));
}
