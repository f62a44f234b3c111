interface Shared<T> {
  promise: Promise<T>;
  /** Absent when the first caller had no signal: it never leaves, so the shared call is never aborted. */
  controller: AbortController | undefined;
  waiters: number;
}

/**
 * Identical calls in flight share one execution: the first caller of a key starts it, later ones with the same
 * key wait for the same result. A caller's abort ends only its own wait; the shared execution is aborted (and
 * forgotten, so that the next caller starts afresh) when every waiter has gone.
 */
export class InFlight<T> {
  readonly #calls = new Map<string, Shared<T>>();

  /** How many distinct calls are in flight. */
  get size(): number {
    return this.#calls.size;
  }

  /**
   * `start`s the call for `key`, or joins the one in flight; `joined` says which. Not `async`: a caller without
   * a signal gets the shared promise itself.
   */
  join(
    key: string,
    signal: AbortSignal | undefined,
    start: (signal: AbortSignal | undefined) => Promise<T>,
  ): { promise: Promise<T>; joined: boolean } {
    if (signal?.aborted) return { promise: Promise.reject(signal.reason), joined: false };
    let shared = this.#calls.get(key);
    const joined = shared !== undefined;
    if (!shared) {
      const controller = signal ? new AbortController() : undefined;
      const created: Shared<T> = { controller, waiters: 0, promise: start(controller?.signal) };
      this.#calls.set(key, created);
      // Registered before any waiter's reaction, so the entry is gone when they resume; also handles a
      // rejection nobody waits for any more.
      const forget = () => {
        if (this.#calls.get(key) === created) this.#calls.delete(key);
      };
      created.promise.then(forget, forget);
      shared = created;
    }
    shared.waiters++;
    return { promise: signal ? this.#wait(key, shared, signal) : shared.promise, joined };
  }

  #wait(key: string, shared: Shared<T>, signal: AbortSignal | undefined): Promise<T> {
    if (!signal) return shared.promise;
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => {
        shared.waiters--;
        if (shared.waiters === 0) {
          if (this.#calls.get(key) === shared) this.#calls.delete(key);
          shared.controller?.abort(signal.reason);
        }
        reject(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      shared.promise.then(
        (value) => {
          signal.removeEventListener('abort', onAbort);
          resolve(value);
        },
        (error: unknown) => {
          signal.removeEventListener('abort', onAbort);
          reject(error);
        },
      );
    });
  }
}
