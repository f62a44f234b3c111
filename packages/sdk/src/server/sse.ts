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
 * buffering or caching it, and backpressure without buffering. While the socket has not taken the last
 * write ({@link backedUp}), the writer sends nothing more: keep-alive comments are skipped, and events wait
 * in the store until the client reads again, then go out together in one write. So a client that stops
 * reading costs no memory, and, since nothing is written to its socket, the server's idle timeout closes it.
 * {@link signal} aborts when the client goes away or {@link end} is called.
 */
export class SseStream {
  readonly #res: ServerResponse;
  readonly #closed = new AbortController();
  #backedUp = false;
  /** Resolves once the stream is over. */
  readonly ended: Promise<void>;

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
    this.ended = new Promise((resolve) => this.#closed.signal.addEventListener('abort', () => resolve()));
    // One listener each for the stream's whole life, however many writes wait on the socket.
    res.on('close', () => this.#closed.abort());
    res.on('drain', () => {
      this.#backedUp = false;
    });
    // A client gone while the request was being handled closed the response before the listener was there.
    if (res.destroyed || res.socket?.destroyed !== false) this.#closed.abort();
  }

  /** Aborts when the stream is over: the client disconnected, or {@link end} was called. */
  get signal(): AbortSignal {
    return this.#closed.signal;
  }

  /** True once the stream is over. */
  get closed(): boolean {
    return this.#closed.signal.aborted;
  }

  /** True while the socket has not taken the last write: the client is slow or stopped reading. */
  get backedUp(): boolean {
    return this.#backedUp;
  }

  /**
   * Writes the events in one write. Callers send nothing while {@link backedUp}; if they do, the socket
   * buffers it in memory.
   */
  send(...events: ServerSentEvent[]): void {
    let text = '';
    for (const event of events) {
      if (event.id !== undefined) text += `id: ${singleLine(String(event.id))}\n`;
      if (event.event !== undefined) text += `event: ${singleLine(event.event)}\n`;
      for (const line of event.data.split(/\r\n|\r|\n/)) text += `data: ${line}\n`;
      text += '\n';
    }
    if (text !== '') this.#write(text);
  }

  /**
   * A comment line, which clients ignore: keeps idle proxies and load balancers from cutting the stream.
   * Skipped while {@link backedUp}: it would only pile up behind the data the client is not reading, and
   * would keep the idle timeout from closing a client that stopped reading.
   */
  comment(text: string): void {
    if (!this.#backedUp) this.#write(`: ${singleLine(text)}\n\n`);
  }

  /** Ends the response; idempotent. */
  end(): void {
    if (!this.closed) this.#closed.abort();
    if (!this.#res.writableEnded) this.#res.end();
  }

  #write(chunk: string): void {
    if (this.closed || this.#res.writableEnded) return;
    if (!this.#res.write(chunk)) this.#backedUp = true;
  }
}

/** A field value must not contain a line break: it would end the field and start another. */
function singleLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ');
}
