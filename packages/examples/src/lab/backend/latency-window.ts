/**
 * Request durations of the last `windowMs`, for the `http_request_duration_p95` gauge the manual alerts on
 * (`> 2000`): a histogram's buckets would only give a bucket bound, and the alert wants milliseconds of the
 * requests users just saw. Bounded to `maxSamples` (the oldest go first) so a traffic spike cannot grow it
 * without limit.
 */
export class LatencyWindow {
  readonly #windowMs: number;
  readonly #maxSamples: number;
  // Parallel ring of (time, duration): two typed arrays avoid an object per request.
  readonly #at: Float64Array;
  readonly #ms: Float64Array;
  #start = 0;
  #size = 0;

  constructor(options: { windowMs?: number; maxSamples?: number } = {}) {
    this.#windowMs = options.windowMs ?? 60_000;
    this.#maxSamples = options.maxSamples ?? 20_000;
    this.#at = new Float64Array(this.#maxSamples);
    this.#ms = new Float64Array(this.#maxSamples);
  }

  /** Records one request that took `durationMs`, finished at `now`. */
  record(durationMs: number, now = Date.now()): void {
    const index = (this.#start + this.#size) % this.#maxSamples;
    this.#at[index] = now;
    this.#ms[index] = durationMs;
    if (this.#size < this.#maxSamples) this.#size++;
    else this.#start = (this.#start + 1) % this.#maxSamples;
  }

  /** The 95th percentile (nearest rank) of the window's durations in ms; 0 when it holds none. */
  p95(now = Date.now()): number {
    this.#evict(now);
    if (this.#size === 0) return 0;
    const values: number[] = new Array(this.#size);
    for (let i = 0; i < this.#size; i++) values[i] = this.#ms[(this.#start + i) % this.#maxSamples] as number;
    values.sort((a, b) => a - b);
    return values[Math.ceil(0.95 * values.length) - 1] as number;
  }

  /** Requests in the window. */
  count(now = Date.now()): number {
    this.#evict(now);
    return this.#size;
  }

  #evict(now: number): void {
    const oldest = now - this.#windowMs;
    while (this.#size > 0 && (this.#at[this.#start] as number) <= oldest) {
      this.#start = (this.#start + 1) % this.#maxSamples;
      this.#size--;
    }
  }
}
