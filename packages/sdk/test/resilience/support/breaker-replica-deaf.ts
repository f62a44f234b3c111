// A replica that is live but deaf to changes (an old build without breaker control, a broken subscriber): it
// keeps writing heartbeats that report every provider in `auto` with a closed breaker, whatever was forced.
// Usage: node --import tsx breaker-replica-deaf.ts '<json config>'   (see ReplicaConfig in breaker-replicas.ts)

import { hostname } from 'node:os';
import { Redis } from 'ioredis';
import { breakerKeys, DEFAULT_BREAKER_PREFIX } from '../../../src/resilience/breaker-control-keys';
import { writeHeartbeat } from '../../../src/resilience/breaker-control-store';

const config = JSON.parse(process.argv[2] ?? '{}') as {
  redisUrl: string;
  service: string;
  replicaId: string;
  prefix?: string;
  providers: string[];
  heartbeat?: number;
  heartbeatTtl?: number;
};
const heartbeat = config.heartbeat ?? 1_000;
const redis = new Redis(config.redisUrl);
const keys = breakerKeys(config.prefix ?? DEFAULT_BREAKER_PREFIX, config.service);
const startedAt = new Date().toISOString();

const beat = () =>
  writeHeartbeat(
    redis,
    keys,
    {
      replicaId: config.replicaId,
      service: config.service,
      host: hostname(),
      pid: process.pid,
      startedAt,
      providers: config.providers,
      forced: Object.fromEntries(config.providers.map((p) => [p, 'auto'])),
      reported: Object.fromEntries(config.providers.map((p) => [p, 'closed'])),
      version: 0,
    },
    config.heartbeatTtl ?? 3 * heartbeat,
  );

await beat();
process.stdout.write(`${JSON.stringify({ event: 'ready', forced: {}, version: 0, at: Date.now() })}\n`);
const timer = setInterval(() => void beat(), heartbeat);
process.on('SIGTERM', async () => {
  clearInterval(timer);
  await redis.multi().del(keys.replica(config.replicaId)).zrem(keys.replicas, config.replicaId).exec();
  redis.disconnect();
  process.exit(0);
});
