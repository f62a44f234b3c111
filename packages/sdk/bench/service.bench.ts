/**
 * Latency (p50, p99) and requests/s of the runbook service under 50 concurrent clients, as multiples of a
 * bare Fastify route measured in the same run, in the same server process (same Fastify version).
 *
 *   npx tsx bench/service.bench.ts [--json]
 *       RUNBOOK_BENCH_DATABASE_URL overrides postgres://postgres@127.0.0.1:5432/test;
 *       BENCH_CONNECTIONS (50), BENCH_WARMUP_S (2), BENCH_DURATION_S (10) override the load.
 *
 * What the numbers mean. Each target gets a warm-up, then a measured run of autocannon with 50 connections
 * and no pipelining (a closed loop: a client sends its next request when the previous answer arrives), so
 * req/s is the throughput at that concurrency and p50/p99 are the latencies the clients saw, in ms, of 2xx
 * answers only (any other answer fails the benchmark).
 * - `bare`: `GET /bare` returning a small JSON object; the floor of Node, HTTP and Fastify on this machine.
 * - `diagnose`: `POST /api/v1/runbooks/noop/diagnose` of a runbook whose only step is a check returning an
 *   ok finding. Pays for bearer-token auth (SHA-256), the per-identity rate limiter (set high enough never to
 *   refuse), zod validation of body and response, the metrics hooks, and above all the engine's PostgreSQL
 *   writes: each diagnose creates a run (a synchronous commit with its `run.created` audit row), records
 *   its step (a relaxed commit with an audit row), ends the run (a synchronous commit with an audit row),
 *   then reads back run, steps and approvals. Every audit row extends one hash chain, so concurrent
 *   diagnoses queue on its head row: the figure is bounded by PostgreSQL commit latency and that chain, not
 *   by HTTP, and moves with the disk's fsync time.
 * - `get run`: `GET /api/v1/runs/<id>` of one run created beforehand: auth, metrics, response validation and
 *   three indexed reads (the run, then its steps and approvals), no writes. At 50 clients the reads queue
 *   for the store's 10 pooled connections, so this too is bounded by PostgreSQL round trips, not HTTP.
 *
 * The servers run in a forked child (bench/support/service-process.ts) so that the load generator's own CPU
 * is not charged to them; on a 2-core machine the client, the server and PostgreSQL still share the cores,
 * so compare the ratios, which are measured in one run, rather than absolute figures across machines.
 * The last line counts the rows left in the store (steps and audit rows per run), which checks the above.
 * Exits with code 1 when any response was not 2xx, any request failed or any run did not succeed.
 */
import { fork } from 'node:child_process';
import autocannon from 'autocannon';
import type { ServiceCommand, ServiceReady, ServiceStopped } from './support/service-process';

const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const WARMUP_S = Number(process.env.BENCH_WARMUP_S ?? 2);
const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 10);
const JSON_OUTPUT = process.argv.includes('--json');

/** One measured target. */
interface Target {
  name: string;
  url: string;
  method: 'GET' | 'POST';
  headers?: Record<string, string>;
  body?: string;
}

/** The figures of one target, and everything that went wrong while measuring it. */
interface Measurement {
  target: string;
  requests: number;
  seconds: number;
  reqPerSec: number;
  p50Ms: number;
  p99Ms: number;
  non2xx: number;
  /** Status code → count, of the answers that were not 2xx. */
  statusCodes: Record<string, number>;
  errors: number;
  timeouts: number;
}

const progress = (line: string) => process.stderr.write(`${line}\n`);

/** Nearest-rank percentile of sorted values. */
const percentile = (sorted: Float64Array, p: number) =>
  sorted.length === 0
    ? Number.NaN
    : (sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)] ?? Number.NaN);

/**
 * Runs autocannon against `target` for `seconds`. Latencies are taken from each response (autocannon's own
 * histogram keeps whole milliseconds, too coarse for the bare route).
 */
function load(target: Target, seconds: number): Promise<Measurement> {
  const latencies: number[] = [];
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: target.url,
        method: target.method,
        ...(target.headers ? { headers: target.headers } : {}),
        ...(target.body !== undefined ? { body: target.body } : {}),
        connections: CONNECTIONS,
        pipelining: 1,
        duration: seconds,
        timeout: 10,
      },
      (error, result) => {
        if (error) return reject(error);
        const sorted = Float64Array.from(latencies).sort();
        const statusCodes: Record<string, number> = {};
        for (const [code, stats] of Object.entries(result.statusCodeStats ?? {})) {
          if (!code.startsWith('2')) statusCodes[code] = stats.count ?? 0;
        }
        resolve({
          target: target.name,
          requests: result.requests.total,
          seconds: result.duration,
          reqPerSec: result.requests.total / result.duration,
          p50Ms: percentile(sorted, 0.5),
          p99Ms: percentile(sorted, 0.99),
          non2xx: result.non2xx,
          statusCodes,
          errors: result.errors,
          timeouts: result.timeouts,
        });
      },
    );
    instance.on('response', (_client, statusCode, _bytes, responseTime) => {
      if (statusCode >= 200 && statusCode < 300) latencies.push(responseTime);
    });
  });
}

/** One request with fetch, to fail fast (and readably) before any load when a target is broken. */
async function probe(target: Target): Promise<unknown> {
  const response = await fetch(target.url, {
    method: target.method,
    ...(target.headers ? { headers: target.headers } : {}),
    ...(target.body !== undefined ? { body: target.body } : {}),
  });
  const text = await response.text();
  if (response.status < 200 || response.status >= 300)
    throw new Error(`${target.name}: ${target.method} answered ${response.status}: ${text.slice(0, 500)}`);
  return JSON.parse(text);
}

/** Forks the service process and waits until both of its servers listen. */
function startServices() {
  const child = fork(new URL('./support/service-process.ts', import.meta.url), [], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const ready = new Promise<ServiceReady>((resolve, reject) => {
    child.once('message', (message: ServiceReady) => resolve(message));
    child.once('exit', (code) =>
      reject(new Error(`the service process exited with code ${code} before it was ready`)),
    );
  });
  /** Asks the child to report and drop its schema; resolves with its report once it has exited. */
  const stop = async (): Promise<ServiceStopped | undefined> => {
    if (child.exitCode !== null || !child.connected) return undefined;
    const stopped = new Promise<ServiceStopped | undefined>((resolve) => {
      child.on('message', (message: ServiceStopped) => {
        if (message.type === 'stopped') resolve(message);
      });
      child.once('exit', () => resolve(undefined));
    });
    child.send({ type: 'stop' } satisfies ServiceCommand);
    const report = await stopped;
    await exited;
    return report;
  };
  return { ready, stop };
}

const ratio = (x: number, base: number) => x / base;

function table(results: Measurement[], base: Measurement): string {
  const head = `${'target'.padEnd(10)} ${'req/s'.padStart(9)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)} ${'req/s vs bare'.padStart(14)} ${'p99 vs bare'.padStart(12)}`;
  const rows = results.map(
    (m) =>
      `${m.target.padEnd(10)} ${m.reqPerSec.toFixed(0).padStart(9)} ${m.p50Ms.toFixed(2).padStart(8)} ${m.p99Ms.toFixed(2).padStart(8)} ${`${ratio(m.reqPerSec, base.reqPerSec).toFixed(3)}×`.padStart(14)} ${`${ratio(m.p99Ms, base.p99Ms).toFixed(1)}×`.padStart(12)}`,
  );
  return [head, ...rows].join('\n');
}

async function main() {
  const services = startServices();
  let failed = false;
  try {
    const { barePort, servicePort, token } = await services.ready;
    const api = `http://127.0.0.1:${servicePort}/api/v1`;
    const auth = { authorization: `Bearer ${token}` };
    const diagnose: Target = {
      name: 'diagnose',
      url: `${api}/runbooks/noop/diagnose`,
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ input: {} }),
    };
    const created = (await probe(diagnose)) as { run: { id: string; status: string } };
    if (created.run.status !== 'succeeded')
      throw new Error(`the no-op diagnose ended ${created.run.status}, expected succeeded`);
    const targets: Target[] = [
      { name: 'bare', url: `http://127.0.0.1:${barePort}/bare`, method: 'GET' },
      diagnose,
      { name: 'get run', url: `${api}/runs/${created.run.id}`, method: 'GET', headers: auth },
    ];
    for (const target of targets) await probe(target);

    progress(
      `service bench: ${CONNECTIONS} connections, pipelining 1, warm-up ${WARMUP_S} s + measured ${DURATION_S} s per target`,
    );
    const results: Measurement[] = [];
    for (const target of targets) {
      progress(`  ${target.name}: warming up…`);
      await load(target, WARMUP_S);
      progress(`  ${target.name}: measuring…`);
      const m = await load(target, DURATION_S);
      progress(
        `  ${target.name}: ${m.reqPerSec.toFixed(0)} req/s, p50 ${m.p50Ms.toFixed(2)} ms, p99 ${m.p99Ms.toFixed(2)} ms${m.non2xx + m.errors > 0 ? `, ${m.non2xx} non-2xx, ${m.errors} errors` : ''}`,
      );
      results.push(m);
    }

    const stopped = await services.stop();
    const base = results[0] as Measurement;
    const bad = results.filter((m) => m.non2xx > 0 || m.errors > 0 || m.timeouts > 0);
    const problems = bad.map(
      (m) =>
        `${m.target}: ${m.non2xx} non-2xx ${JSON.stringify(m.statusCodes)}, ${m.errors} errors (${m.timeouts} timeouts)`,
    );
    if (!stopped) problems.push('the service process did not report its row counts');
    else if (stopped.unsucceeded > 0) problems.push(`${stopped.unsucceeded} diagnose runs did not succeed`);
    failed = problems.length > 0;

    const store = stopped && {
      runs: stopped.runs,
      auditRowsPerRun: stopped.audit / stopped.runs,
      stepsPerRun: stopped.steps / stopped.runs,
    };
    if (JSON_OUTPUT) {
      const summary = {
        ok: !failed,
        problems,
        connections: CONNECTIONS,
        pipelining: 1,
        warmupSeconds: WARMUP_S,
        durationSeconds: DURATION_S,
        node: process.version,
        targets: results.map((m) => ({
          ...m,
          reqPerSecVsBare: ratio(m.reqPerSec, base.reqPerSec),
          p99VsBare: ratio(m.p99Ms, base.p99Ms),
        })),
        store,
      };
      console.log(JSON.stringify(summary, null, 2));
    } else {
      console.log(
        `runbook service vs a bare Fastify route in the same server process, ${CONNECTIONS} connections, pipelining 1, ${DURATION_S} s each after ${WARMUP_S} s warm-up`,
      );
      console.log(table(results, base));
      if (store)
        console.log(
          `store after the run: ${store.runs} runs, ${store.stepsPerRun.toFixed(2)} steps and ${store.auditRowsPerRun.toFixed(2)} audit rows per run`,
        );
    }
    if (failed) {
      if (!JSON_OUTPUT) console.log(`INVALID: ${problems.join('; ')}`);
      progress(`\n!!! BENCHMARK INVALID: ${problems.length} problem(s); the figures above do not count:`);
      for (const problem of problems) progress(`!!!   ${problem}`);
      process.exitCode = 1;
    }
  } finally {
    await services.stop();
  }
}

await main();
