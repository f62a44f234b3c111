import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

// Fastify is not a dependency of the SDK. RATE-LIMITS.md shows its route handlers written against Fastify's
// types; the tests run the same code against this stand-in, which has the part of Fastify's API that the
// handlers use (`app.post`, `request.body`, `request.ip`, `reply.code/header/send`) and serves it over real
// HTTP, so the status and headers are checked on the wire.

/** The part of a Fastify reply the examples use. */
export interface FastifyReply {
  code(status: number): FastifyReply;
  header(name: string, value: string): FastifyReply;
  send(body: unknown): FastifyReply;
}

/** The part of a Fastify request the examples use. */
export interface FastifyRequest {
  body: unknown;
  ip: string;
}

/** The part of a Fastify instance the examples use. */
export interface FastifyInstance {
  post(path: string, handler: (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>): void;
}

/** A stand-in app: routes as Fastify declares them, served by node:http on a free port. */
export function standInFastify(): FastifyInstance & { listen(): Promise<string>; close(): Promise<void> } {
  const routes = new Map<string, (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>>();
  let server: Server | undefined;
  return {
    post(path, handler) {
      routes.set(path, handler);
    },
    listen() {
      server = createServer((req, res) => {
        const handler = req.method === 'POST' ? routes.get(req.url ?? '') : undefined;
        if (!handler) {
          res.writeHead(404).end();
          return;
        }
        let text = '';
        req.on('data', (chunk: Buffer) => {
          text += chunk.toString();
        });
        req.on('end', () => {
          let status = 200;
          const headers: Record<string, string> = { 'content-type': 'application/json' };
          let sent = false;
          const reply: FastifyReply = {
            code(s) {
              status = s;
              return reply;
            },
            header(name, value) {
              headers[name.toLowerCase()] = value;
              return reply;
            },
            send(body) {
              sent = true;
              res.writeHead(status, headers).end(JSON.stringify(body));
              return reply;
            },
          };
          const request = { body: text ? JSON.parse(text) : undefined, ip: req.socket.remoteAddress ?? '' };
          handler(request, reply).then(
            (value) => {
              if (!sent) reply.send(value);
            },
            (error: unknown) => {
              if (!sent) reply.code(500).send({ error: { message: String(error) } });
            },
          );
        });
      });
      return new Promise((resolve) => {
        const listening = server as Server;
        listening.listen(0, '127.0.0.1', () => {
          resolve(`http://127.0.0.1:${(listening.address() as AddressInfo).port}`);
        });
      });
    },
    close() {
      return new Promise((resolve) => (server ? server.close(() => resolve()) : resolve()));
    },
  };
}
