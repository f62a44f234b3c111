import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PortInUseError, startChildService } from './child-service';

// A program that serves `{"status":"ok"}` on /readyz at the port it is given, as the runbook service does.
const PROGRAM = `
const http = require('node:http');
http.createServer((req, res) => { res.setHeader('content-type', 'application/json'); res.end('{"status":"ok"}'); })
  .listen(Number(process.argv[1]), '127.0.0.1');
`;
const isOurs = async (response: Response) =>
  ((await response.json().catch(() => null)) as { status?: unknown } | null)?.status === 'ok';

let dir: string;
let impostor: Server;
let takenPort: number;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'child-service-'));
  // Another process on the port, answering its own readiness path with a plain 200, as a Kubernetes API does.
  impostor = createServer((_req, res) => res.end('ok'));
  await new Promise<void>((resolve) => impostor.listen(0, '127.0.0.1', resolve));
  takenPort = (impostor.address() as AddressInfo).port;
});
afterAll(async () => {
  await new Promise((resolve) => impostor.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

describe('startChildService', () => {
  it('does not take another program answering on its port for its own, and says the port was taken', async () => {
    const started = startChildService({
      name: 'program',
      command: process.execPath,
      args: ['-e', PROGRAM, String(takenPort)],
      readyUrl: `http://127.0.0.1:${takenPort}/readyz`,
      isOurs,
      logFile: join(dir, 'taken.log'),
      readyTimeoutMs: 20_000,
    });
    await expect(started).rejects.toBeInstanceOf(PortInUseError);
    await expect(started).rejects.toThrow(/program exited \(1\) before it was ready/);
  });

  it('is ready when its own answer comes, and stops', async () => {
    const free = createServer();
    await new Promise<void>((resolve) => free.listen(0, '127.0.0.1', resolve));
    const port = (free.address() as AddressInfo).port;
    await new Promise((resolve) => free.close(resolve));
    const service = await startChildService({
      name: 'program',
      command: process.execPath,
      args: ['-e', PROGRAM, String(port)],
      readyUrl: `http://127.0.0.1:${port}/readyz`,
      isOurs,
      logFile: join(dir, 'free.log'),
    });
    expect(await (await fetch(`http://127.0.0.1:${port}/readyz`)).json()).toEqual({ status: 'ok' });
    await service.stop();
    await expect(fetch(`http://127.0.0.1:${port}/readyz`)).rejects.toThrow();
  });
});
