/**
 * Passing one HTTP request on to an upstream server and its answer back, the way a reverse proxy does: shared by
 * the Grafana proxy double and the browser test's host server.
 */
import {
  request as httpRequest,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type RequestOptions,
  type ServerResponse,
} from 'node:http';

/** Where and how to send the upstream request. */
export interface RelayTarget {
  /** The upstream URL; without it, `options` alone say where (host, port, path). */
  url?: URL;
  /** Method, headers and, without `url`, the address. */
  options: RequestOptions;
  /** The request body: bytes already read, or the incoming request to stream as it arrives. */
  body: Buffer | IncomingMessage;
  /**
   * Answer headers not passed back (lower case).
   * @default []
   */
  dropAnswerHeaders?: readonly string[];
}

/**
 * Sends the request upstream and pipes the answer (status, headers, body) to `res`. Resolves once the answer
 * has been passed on; an unreachable upstream is answered 502 with an empty body, like Go's reverse proxy.
 */
export function relay(res: ServerResponse, target: RelayTarget): Promise<void> {
  const { url, options, body, dropAnswerHeaders = [] } = target;
  return new Promise((resolve) => {
    const onAnswer = (answer: IncomingMessage) => {
      const headers: OutgoingHttpHeaders = { ...answer.headers };
      for (const name of dropAnswerHeaders) delete headers[name];
      res.writeHead(answer.statusCode ?? 502, headers);
      answer.pipe(res);
      answer.on('end', resolve);
      answer.on('error', () => resolve());
    };
    const upstream = url ? httpRequest(url, options, onAnswer) : httpRequest(options, onAnswer);
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
      resolve();
    });
    if (Buffer.isBuffer(body)) upstream.end(body);
    else body.pipe(upstream);
  });
}
