import { randomUUID } from 'node:crypto';
import { createRequestQueue, type RequestQueue } from '@aiwebtest/runbooks/resilience';
import type { Redis } from 'ioredis';
import { z } from 'zod';

/** A /generate request waiting in the queue; `replyTo` names the HTTP request waiting for its answer. */
export interface QueuedGenerate {
  replyTo: string;
  prompt: string;
  agent?: string;
}

/** What a queued request ended with, sent back to whichever replica holds its HTTP request. */
export const QueuedOutcome = z.discriminatedUnion('ok', [
  z.object({
    replyTo: z.string(),
    ok: z.literal(true),
    text: z.string(),
    provider: z.string(),
    cached: z.boolean(),
  }),
  z.object({
    replyTo: z.string(),
    ok: z.literal(false),
    status: z.number().int(),
    code: z.string(),
    message: z.string(),
  }),
]);
export type QueuedOutcome = z.output<typeof QueuedOutcome>;
/** What one /generate ended with: the answer, or the HTTP status and error to send. */
export type GenerateOutcome =
  | { ok: true; text: string; provider: string; cached: boolean }
  | { ok: false; status: number; code: string; message: string };

/** Deliveries per item before its failure is given back to the caller (the SDK's default, made explicit). */
const MAX_ATTEMPTS = 3;

/**
 * Runbook 7's request queue behind /generate: requests wait in Redis (`LLEN <prefix>agent:requests:queue`), at
 * most `maxLength`, and every replica's consumer sends them on at `perMinute` in all. The HTTP request stays
 * open until its answer comes back on a pub/sub channel: the replica that drains an item is not necessarily
 * the one holding the caller.
 */
export class GenerateQueue {
  #queue: RequestQueue<QueuedGenerate>;
  #perMinute: number;
  #handle: ((request: QueuedGenerate) => Promise<GenerateOutcome>) | undefined;
  readonly #redis: Redis;
  readonly #key: string;
  readonly #maxLength: number;
  readonly #channel: string;
  readonly #subscriber: Redis;
  readonly #waiting = new Map<string, (outcome: GenerateOutcome) => void>();
  #consumer: AbortController | undefined;
  #consumed: Promise<void> = Promise.resolve();

  private constructor(redis: Redis, subscriber: Redis, prefix: string, maxLength: number, perMinute: number) {
    this.#redis = redis;
    this.#subscriber = subscriber;
    this.#channel = `${prefix}agent:requests:results`;
    this.#key = `${prefix}agent:requests:queue`;
    this.#maxLength = maxLength;
    this.#perMinute = perMinute;
    this.#queue = this.#makeQueue();
    subscriber.on('message', (channel: string, message: string) => {
      if (channel !== this.#channel) return;
      let parsed: QueuedOutcome;
      try {
        parsed = QueuedOutcome.parse(JSON.parse(message));
      } catch {
        return; // not ours to read; the waiter times out rather than get garbage
      }
      const { replyTo, ...outcome } = parsed;
      this.#waiting.get(replyTo)?.(outcome);
    });
  }

  /** The SDK queue now in use (replaced when the rate changes). */
  get queue(): RequestQueue<QueuedGenerate> {
    return this.#queue;
  }

  #makeQueue(): RequestQueue<QueuedGenerate> {
    // burst 1 spaces the calls evenly: OpenRouter counts strictly, a burst would earn 429s (RATE-LIMITS.md).
    return createRequestQueue<QueuedGenerate>(this.#redis, {
      key: this.#key,
      maxLength: this.#maxLength,
      rate: { limit: this.#perMinute, period: '1m', burst: 1 },
      maxAttempts: MAX_ATTEMPTS,
    });
  }

  /**
   * A new drain rate (`OPENROUTER_MAX_REQUESTS_PER_MINUTE` changed): the items and the callers waiting for them
   * stay; only the consumer starts again at the new rate.
   */
  setRate(perMinute: number): void {
    if (perMinute === this.#perMinute) return;
    this.#perMinute = perMinute;
    this.#queue = this.#makeQueue();
    if (this.#handle) this.consume(this.#handle);
  }

  /** Subscribes to the result channel before anything can be enqueued, so no answer is published unheard. */
  static async open(
    redis: Redis,
    prefix: string,
    maxLength: number,
    perMinute: number,
  ): Promise<GenerateQueue> {
    const subscriber = redis.duplicate();
    const queue = new GenerateQueue(redis, subscriber, prefix, maxLength, perMinute);
    await subscriber.subscribe(queue.#channel);
    return queue;
  }

  /**
   * Enqueues and waits for the outcome (or `timeoutMs`, then rejects with a `QUEUE_WAIT_TIMEOUT` error while the
   * item stays queued). Throws the SDK's `QueueFullError` (429) when the queue is full.
   */
  async submit(request: Omit<QueuedGenerate, 'replyTo'>, timeoutMs: number): Promise<GenerateOutcome> {
    const replyTo = randomUUID();
    // Listening before enqueueing: a fast consumer could otherwise answer before anyone waits.
    const outcome = new Promise<GenerateOutcome>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(replyTo);
        reject(
          Object.assign(new Error(`no answer from the request queue within ${timeoutMs} ms`), {
            code: 'QUEUE_WAIT_TIMEOUT',
          }),
        );
      }, timeoutMs);
      this.#waiting.set(replyTo, (o) => {
        clearTimeout(timer);
        this.#waiting.delete(replyTo);
        resolve(o);
      });
    });
    try {
      await this.#queue.enqueue({ replyTo, ...request });
    } catch (e) {
      this.#waiting.get(replyTo)?.({ ok: false, status: 0, code: 'NOT_ENQUEUED', message: '' });
      outcome.catch(() => {});
      throw e;
    }
    return outcome;
  }

  /** Starts this replica's consumer (replacing a running one) with `handle` producing each outcome. */
  consume(handle: (request: QueuedGenerate) => Promise<GenerateOutcome>, concurrency = 4): void {
    this.#handle = handle;
    this.#consumer?.abort();
    const controller = new AbortController();
    this.#consumer = controller;
    const previous = this.#consumed;
    this.#consumed = this.#queue
      .process(
        async (request, delivery) => {
          const outcome = await handle(request);
          // A retriable failure goes back to the queue (Runbook 6: "queue requests for retry later") until its
          // attempts are spent; only then does the caller hear of it.
          if (!outcome.ok && outcome.status >= 500 && delivery.attempt < MAX_ATTEMPTS)
            throw new Error(`${outcome.code}: ${outcome.message}`);
          await this.#redis.publish(this.#channel, JSON.stringify({ ...outcome, replyTo: request.replyTo }));
        },
        { concurrency, signal: controller.signal },
      )
      .then(() => previous);
  }

  /** Items waiting (`LLEN`). */
  length(): Promise<number> {
    return this.#queue.length();
  }

  /** Stops consuming and listening; callers still waiting get a 503 outcome. */
  async close(): Promise<void> {
    this.#consumer?.abort();
    await this.#consumed.catch(() => {});
    for (const resolve of [...this.#waiting.values()])
      resolve({ ok: false, status: 503, code: 'SHUTTING_DOWN', message: 'the backend is shutting down' });
    this.#subscriber.disconnect();
  }
}
