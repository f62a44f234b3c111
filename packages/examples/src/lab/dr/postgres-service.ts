/**
 * The disaster-recovery lab's address of "the database" for its own clients (activity, metrics, health):
 * a TCP forwarder, like a Kubernetes Service in front of the PostgreSQL pod, whose endpoint is whatever
 * server PgBouncer's `[databases]` entry names. When a runbook points PgBouncer at a restored server, the
 * lab's own connections follow on their next connect, as the application's do through PgBouncer.
 */
import { readFile, stat } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import { type DatabaseAddress, pgbouncerDatabaseAddress } from '../../aiwebtest/system-failure';

export interface PostgresService {
  port: number;
  /** `postgres://postgres@127.0.0.1:<port>/<database>`. */
  url(database: string): string;
  /** Where new connections go now. */
  target(): Promise<DatabaseAddress>;
  close(): Promise<void>;
}

export async function startPostgresService(options: {
  /** PgBouncer's ini file. */
  pgbouncerIni: string;
  database: string;
}): Promise<PostgresService> {
  let cached: { mtimeMs: number; address: DatabaseAddress } | undefined;
  const target = async (): Promise<DatabaseAddress> => {
    const { mtimeMs } = await stat(options.pgbouncerIni);
    if (cached?.mtimeMs !== mtimeMs) {
      const address = pgbouncerDatabaseAddress(
        await readFile(options.pgbouncerIni, 'utf8'),
        options.database,
      );
      if (!address) throw new Error(`${options.pgbouncerIni} has no entry for ${options.database}`);
      cached = { mtimeMs, address };
    }
    return cached.address;
  };
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    sockets.add(client);
    client.on('error', () => {});
    client.on('close', () => sockets.delete(client));
    client.pause();
    target().then(
      (to) => {
        const upstream = connect(to.port, to.host);
        sockets.add(upstream);
        upstream.on('error', () => client.destroy());
        client.on('close', () => upstream.destroy());
        upstream.on('close', () => {
          sockets.delete(upstream);
          client.destroy();
        });
        upstream.pipe(client);
        client.pipe(upstream);
        client.resume();
      },
      () => client.destroy(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    port,
    url: (database) => `postgres://postgres@127.0.0.1:${port}/${encodeURIComponent(database)}`,
    target,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
