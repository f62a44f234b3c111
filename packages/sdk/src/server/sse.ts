import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';

/** Headers as Fastify's `reply.getHeaders()` gives them. */
export type HeaderValues = Readonly<Record<string, string | number | string[] | undefined>>;

/** One Server-Sent Event. `event` and `id` must be single lines; `data` may span lines. */
export interface ServerSentEvent {
  id?: string | number;
  event?: string;
  data: string;
}

/**
 * A `text/event-stream` response written by hand on a hijacked reply: the headers that keep proxies from
 * buffering or caching it, one event per write, and backpressure (a slow client slows the writer instead
 * of growing the process's memory). {@link signal} aborts when the client goes away or {@link end} is called.
 */
export class SseStream {
  readonly #res: ServerResponse;
  readonly #closed = new AbortController();

  /** `headers`: those already set on the reply (security, rate limit), which a hijacked reply would lose. */
  constructor(res: ServerResponse, headers: HeaderValues = {}) {
    this.#res = res;
    const inherited: OutgoingHttpHeaders = {};
    for (const [name, value] of Object.entries(headers)) if (value !== undefined) inherited[name] = value;
    res.writeHead(200, {
      ...inherited,
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      // nginx (and ingress-nginx) buffer responses unless told not to; events would arrive in bursts.
      'x-accel-buffering': 'no',
    });
    res.flushHeaders();
    res.on('close', () => this.#closed.abort());
  }

  /** Aborts when the stream is over: the client disconnected, or {@link end} was called. */
  get signal(): AbortSignal {
    return this.#closed.signal;
  }

  /** True once the stream is over. */
  get closed(): boolean {
    return this.#closed.signal.aborted;
  }

  /** Writes one event; resolves once the socket takes more (or the stream closed). */
  send(event: ServerSentEvent): Promise<void> {
    let text = '';
    if (event.id !== undefined) text += `id: ${singleLine(String(event.id))}\n`;
    if (event.event !== undefined) text += `event: ${singleLine(event.event)}\n`;
    for (const line of event.data.split(/\r\n|\r|\n/)) text += `data: ${line}\n`;
    return this.#write(`${text}\n`);
  }

  /** A comment line, which clients ignore: keeps idle proxies and load balancers from cutting the stream. */
  comment(text: string): Promise<void> {
    return this.#write(`: ${singleLine(text)}\n\n`);
  }

  /** Ends the response; idempotent. */
  end(): void {
    if (!this.closed) this.#closed.abort();
    if (!this.#res.writableEnded) this.#res.end();
  }

  #write(chunk: string): Promise<void> {
    if (this.closed || this.#res.writableEnded) return Promise.resolve();
    if (this.#res.write(chunk)) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.#res.off('drain', done);
        this.#closed.signal.removeEventListener('abort', done);
        resolve();
      };
      this.#res.on('drain', done);
      this.#closed.signal.addEventListener('abort', done, { once: true });
    });
  }
}

/** A field value must not contain a line break: it would end the field and start another. */
function singleLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ');
}
