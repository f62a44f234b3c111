/**
 * Per-call overhead of the provider chain, as a multiple of a raw opossum `fire` of the same function measured
 * in the same run: one provider whose call is an already resolved promise, no cache, metrics on (a registry of
 * its own). The baseline fires that function as a raw opossum user would, with its arguments (request,
 * context) and the chain's breaker options; opossum's defaults and a no-argument function are shown too. Everything the chain adds — the forced-state read, key pick, per-call AbortController, metrics
 * tallies, the result object — is in the chain's number; the provider's work is nil, so this is pure overhead.
 *
 *   npx tsx bench/provider-chain.bench.ts          (BENCH_CALLS=… per round, BENCH_ROUNDS=… rounds)
 *
 * Target (issue #5): chain ≤ 1.2× raw opossum with the same breaker options. The variants run interleaved,
 * round after round (their order rotating); the ratio is the median over rounds of chain ÷ raw in the same
 * round, so a noisy moment on the machine hits both sides of each ratio alike.
 */
import CircuitBreaker from 'opossum';
import { Registry } from 'prom-client';
import { createProviderChain } from '../src/resilience/provider-chain';
import type { ChatAnswer, ChatRequest, ProviderCallContext } from '../src/resilience/provider-request';

// Short rounds, many of them: a burst of load on the machine then lands in a few rounds of every variant
// instead of in the whole sample of one.
const CALLS = Number(process.env.BENCH_CALLS ?? 2_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 151);
const WARMUP_ROUNDS = 20;

const answer: ChatAnswer = { content: 'ok', model: 'bench-model' };
const resolved = Promise.resolve(answer);
// The provider's function: what the chain calls, and what raw opossum fires with the same arguments.
const call = (_request: ChatRequest, _context: ProviderCallContext) => resolved;
const request: ChatRequest = { messages: [{ role: 'user', content: 'How many agents are healthy?' }] };
const context: ProviderCallContext = { signal: new AbortController().signal };

// The options the chain gives opossum by default (provider-options.ts, breaker.ts).
const chainBreakerOptions: CircuitBreaker.Options = {
  timeout: 30_000,
  errorThresholdPercentage: 50,
  resetTimeout: 30_000,
  volumeThreshold: 5,
  rollingCountTimeout: 10_000,
  rollingCountBuckets: 10,
  rollingPercentilesEnabled: false,
  enableSnapshots: false,
};

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < CALLS; i++) await fn();
  return ((performance.now() - started) * 1000) / CALLS;
}

async function main() {
  const raw = new CircuitBreaker(call, { ...chainBreakerOptions });
  const rawDefaults = new CircuitBreaker(call, {});
  const rawNoArgs = new CircuitBreaker(() => resolved, { ...chainBreakerOptions });
  const registry = new Registry();
  const chain = createProviderChain({
    providers: [{ name: 'bench', model: 'bench-model', call }],
    metrics: { registry },
  });
  const coalescing = createProviderChain({
    providers: [{ name: 'bench', model: 'bench-model', call }],
    coalesce: true,
    metrics: { registry: new Registry() },
  });

  const variants: [string, () => Promise<unknown>][] = [
    ['raw opossum fire(request, context), chain’s options', () => raw.fire(request, context)],
    ['raw opossum fire(request, context), defaults', () => rawDefaults.fire(request, context)],
    ['raw opossum fire() of a no-argument function', () => rawNoArgs.fire()],
    ['chain.chat (the defaults: coalesce off)', () => chain.chat(request)],
    ['chain.chat (coalesce: true)', () => coalescing.chat(request)],
  ];
  const samples = new Map<string, number[]>(variants.map(([name]) => [name, []]));
  for (let round = 0; round < WARMUP_ROUNDS + ROUNDS; round++) {
    // Rotate the order too, so that no variant always runs right after the same one.
    for (let k = 0; k < variants.length; k++) {
      const [name, fn] = variants[(round + k) % variants.length] as [string, () => Promise<unknown>];
      const us = await timed(fn);
      if (round >= WARMUP_ROUNDS) samples.get(name)?.push(us);
    }
  }

  const baseline = samples.get(variants[0]?.[0] as string) ?? [];
  /** Median over rounds of this variant's time ÷ the raw baseline's time in the same round. */
  const ratioOf = (name: string) =>
    median((samples.get(name) ?? []).map((us, i) => us / (baseline[i] as number)));
  console.log(
    `provider chain overhead: ${ROUNDS} rounds × ${CALLS} sequential calls; median µs per call, median ratio`,
  );
  for (const [name] of variants) {
    const us = median(samples.get(name) ?? []);
    console.log(`  ${name.padEnd(50)} ${us.toFixed(3).padStart(7)} µs   ${ratioOf(name).toFixed(2)}×`);
  }
  const ratio = ratioOf('chain.chat (the defaults: coalesce off)');
  console.log(
    `  target ≤ 1.2× raw opossum, same function and options: ${ratio.toFixed(2)}× ${ratio <= 1.2 ? 'met' : 'MISSED'}`,
  );

  // The metrics counted every call (a check that the tallies were really on, not an optimised-away path).
  const text = await registry.metrics();
  const counted = /bench_api_requests_total\{outcome="success"\} (\d+)/.exec(text)?.[1];
  console.log(`  metrics: bench_api_requests_total{outcome="success"} = ${counted}`);
  await chain.close();
  await coalescing.close();
  raw.shutdown();
  rawDefaults.shutdown();
  rawNoArgs.shutdown();
}

await main();
