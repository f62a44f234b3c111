/**
 * Per-call overhead of the provider chain, as a multiple of a raw opossum `fire` of the same function measured
 * in the same run: one provider whose call is an already resolved promise, no cache, metrics on (a registry of
 * its own). The baseline fires that function as a raw opossum user would, with its arguments (request,
 * context) and the chain's breaker options; opossum's defaults and a no-argument function are shown too.
 * Everything the chain adds — the forced-state read, key pick, metrics tallies, the result object — is in the
 * chain's number; the provider's work is nil, so this is pure overhead.
 *
 * The chain makes a call's AbortController only when the provider reads `signal`, and this provider does not.
 * Real providers do (they pass it to `fetch`), so a second phase, after the first and reported separately,
 * measures a chain whose provider reads it next to a raw opossum fire that makes an AbortController per call, as
 * a raw user passing a signal to `fetch` would. It runs after the first phase so that its code shapes (a
 * provider reading `signal`, contexts of two kinds) cannot slow the baseline case's code down.
 *
 *   npx tsx bench/provider-chain.bench.ts          (BENCH_CALLS=… per round, BENCH_ROUNDS=… rounds)
 *
 * Target (issue #5): chain ≤ 1.2× raw opossum with the same breaker options, for the provider that does not read
 * `signal` (the baseline case). The process exits with 1 when it is missed. The variants run interleaved, round
 * after round (their order rotating); the ratio is the median over rounds of chain ÷ raw in the same round, so a
 * noisy moment on the machine hits both sides of each ratio alike.
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
// A provider that reads its signal, as one passing it to `fetch` does: the chain then makes an AbortController.
const callReadingSignal = (_request: ChatRequest, context: ProviderCallContext) =>
  context.signal.aborted ? Promise.reject(context.signal.reason) : resolved;
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

const TARGET = 1.2;
const BASELINE = 'raw opossum fire(request, context), chain’s options';
const CHAIN = 'chain.chat (the defaults: coalesce off)';
const RAW_WITH_SIGNAL = 'raw opossum fire, a new AbortController per call';
const CHAIN_WITH_SIGNAL = 'chain.chat, the provider reads signal';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < CALLS; i++) await fn();
  return ((performance.now() - started) * 1000) / CALLS;
}

type Variant = [name: string, fn: () => Promise<unknown>];

/**
 * Runs the variants interleaved (their order rotating, so that no variant always runs right after the same
 * one) and prints each one's median µs per call and median ratio to the first variant in the same round.
 * Returns the ratio function.
 */
async function phase(title: string, variants: Variant[]): Promise<(name: string, base?: string) => number> {
  const samples = new Map<string, number[]>(variants.map(([name]) => [name, []]));
  for (let round = 0; round < WARMUP_ROUNDS + ROUNDS; round++) {
    for (let k = 0; k < variants.length; k++) {
      const [name, fn] = variants[(round + k) % variants.length] as Variant;
      const us = await timed(fn);
      if (round >= WARMUP_ROUNDS) samples.get(name)?.push(us);
    }
  }
  const first = variants[0]?.[0] as string;
  /** Median over rounds of `name`'s time ÷ `base`'s time in the same round. */
  const ratioOf = (name: string, base: string = first) => {
    const baseline = samples.get(base) ?? [];
    return median((samples.get(name) ?? []).map((us, i) => us / (baseline[i] as number)));
  };
  console.log(`${title}: ${ROUNDS} rounds × ${CALLS} sequential calls; median µs per call, median ratio`);
  for (const [name] of variants) {
    const us = median(samples.get(name) ?? []);
    console.log(`  ${name.padEnd(52)} ${us.toFixed(3).padStart(7)} µs   ${ratioOf(name).toFixed(2)}×`);
  }
  return ratioOf;
}

async function main(): Promise<boolean> {
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
  const readingSignal = createProviderChain({
    providers: [{ name: 'bench', model: 'bench-model', call: callReadingSignal }],
    metrics: { registry: new Registry() },
  });
  try {
    const ratioOf = await phase('provider chain overhead', [
      [BASELINE, () => raw.fire(request, context)],
      ['raw opossum fire(request, context), defaults', () => rawDefaults.fire(request, context)],
      ['raw opossum fire() of a no-argument function', () => rawNoArgs.fire()],
      [CHAIN, () => chain.chat(request)],
      ['chain.chat (coalesce: true)', () => coalescing.chat(request)],
    ]);
    const ratio = ratioOf(CHAIN);
    const met = ratio <= TARGET;
    console.log(
      `  target ≤ ${TARGET}× raw opossum, same function and options: ${ratio.toFixed(2)}× ${met ? 'met' : 'MISSED'}`,
    );
    // The metrics counted every call (a check that the tallies were really on, not an optimised-away path).
    const text = await registry.metrics();
    const counted = /bench_api_requests_total\{outcome="success"\} (\d+)/.exec(text)?.[1];
    console.log(`  metrics: bench_api_requests_total{outcome="success"} = ${counted}`);

    const signalRatioOf = await phase('a provider that reads signal (no target)', [
      [BASELINE, () => raw.fire(request, context)],
      [RAW_WITH_SIGNAL, () => raw.fire(request, { signal: new AbortController().signal })],
      [CHAIN_WITH_SIGNAL, () => readingSignal.chat(request)],
    ]);
    console.log(
      `  ${CHAIN_WITH_SIGNAL}: ${signalRatioOf(CHAIN_WITH_SIGNAL, RAW_WITH_SIGNAL).toFixed(2)}× the raw fire with an AbortController per call`,
    );
    return met;
  } finally {
    await chain.close();
    await coalescing.close();
    await readingSignal.close();
    raw.shutdown();
    rawDefaults.shutdown();
    rawNoArgs.shutdown();
  }
}

// A missed target fails the run (CI, scripts), once everything was printed and closed.
if (!(await main())) process.exitCode = 1;
