import type { FastifyInstance } from 'fastify';

/** A response as the tests see it. */
export interface Reply {
  status: number;
  /** The response headers, names in lower case. */
  headers: Record<string, string>;
  /** The parsed body when it is JSON (an event stream is only in `text`). */
  body: unknown;
  text: string;
}

/** Every error body the server sent during a file, to assert none leaks a stack trace. */
export const errorBodies: string[] = [];

/** Starts `app` on a free local port and returns a small JSON client for it over real HTTP. */
export async function listen(app: FastifyInstance) {
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (!address || typeof address === 'string') throw new Error('server has no TCP address');
  const { port } = address;
  const base = `http://127.0.0.1:${port}`;

  async function call(
    method: string,
    path: string,
    options: { token?: string; body?: unknown; raw?: string; headers?: Record<string, string> } = {},
  ): Promise<Reply> {
    const headers: Record<string, string> = { ...options.headers };
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    let body: string | undefined;
    if (options.raw !== undefined) body = options.raw;
    else if (options.body !== undefined) body = JSON.stringify(options.body);
    if (body !== undefined) headers['content-type'] ??= 'application/json';
    const response = await fetch(`${base}${path}`, {
      method,
      headers,
      ...(body !== undefined ? { body } : {}),
    });
    const text = await response.text();
    if (response.status >= 400) errorBodies.push(text);
    const isJson = response.headers.get('content-type')?.includes('application/json') ?? false;
    return {
      status: response.status,
      headers: Object.fromEntries(response.headers.entries()),
      text,
      body: isJson && text ? JSON.parse(text) : undefined,
    };
  }
  return { base, port, call };
}
