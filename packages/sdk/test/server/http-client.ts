import type { FastifyInstance } from 'fastify';

/** A response as the tests see it. */
export interface Reply {
  status: number;
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
  const base = `http://127.0.0.1:${address.port}`;

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
    return { status: response.status, text, body: text ? JSON.parse(text) : undefined };
  }
  return { base, call };
}
