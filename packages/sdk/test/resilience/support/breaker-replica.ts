// One replica of a service, in a process of its own: breaker control over a real Redis and a stand-in for the
// provider chain (it registers its providers and reports each breaker as the forced state makes it: open when
// forced open, closed otherwise). Every change is printed as a JSON line with the local time it was heard.
// Usage: node --import tsx breaker-replica.ts '<json config>'   (see ReplicaConfig in breaker-replicas.ts)

import { Redis } from 'ioredis';
import { startBreakerControl } from '../../../src/resilience/breaker-control';

const config = JSON.parse(process.argv[2] ?? '{}') as {
  redisUrl: string;
  service: string;
  replicaId: string;
  prefix?: string;
  providers: string[];
  heartbeat?: number;
  heartbeatTtl?: number;
};

const print = (line: Record<string, unknown>) =>
  process.stdout.write(`${JSON.stringify({ ...line, at: Date.now() })}\n`);

const redis = new Redis(config.redisUrl);
const control = await startBreakerControl(redis, {
  service: config.service,
  replicaId: config.replicaId,
  ...(config.prefix ? { prefix: config.prefix } : {}),
  ...(config.heartbeat ? { heartbeat: config.heartbeat } : {}),
  ...(config.heartbeatTtl ? { heartbeatTtl: config.heartbeatTtl } : {}),
  onError: (e) => print({ event: 'error', message: e instanceof Error ? e.message : String(e) }),
});

// The chain's side of the switch: what createProviderChain does with its opossum breakers.
const breaker = (state: string) => (state === 'open' ? 'open' : 'closed');
control.onChange((provider, state) => {
  control.report(provider, breaker(state));
  print({ event: 'change', provider, state, version: control.version });
});
control.register(config.providers);
for (const provider of config.providers) control.report(provider, breaker(control.forced(provider)));

// What the first call would see: read synchronously right after start resolved.
print({
  event: 'ready',
  forced: Object.fromEntries(config.providers.map((p) => [p, control.forced(p)])),
  version: control.version,
});

const stop = async () => {
  await control.close();
  redis.disconnect();
  print({ event: 'closed' });
  process.exit(0);
};
process.on('SIGTERM', () => void stop());
