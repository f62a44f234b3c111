import { RunbookError } from '../../../core/errors';
import type { ObjectStore } from '../object-store';
import type { Controller } from './controller';

/** A controller as the loop runs it. */
export interface LoopEntry {
  controller: Controller;
  /**
   * Its time-based wake-ups are routine (metrics scrapes) and do not keep {@link ControlLoop.settle} waiting.
   * @default false
   */
  periodic?: boolean;
}

/** A controller's `sync` threw; the loop kept going. */
export interface ControllerFailure {
  controller: string;
  error: unknown;
  at: Date;
}

export interface ControlLoopOptions {
  /** Where the loop reports a failing controller or a write loop. @default console.warn */
  log?: (message: string) => void;
}

/** How far ahead a requested wake-up still counts as "work in progress" for `settle`. */
const SETTLE_HORIZON_MS = 50;
/** Change-producing passes in a row before the loop suspects controllers feeding each other forever. */
const MAX_BUSY_PASSES = 100;
/** The pause between passes once it does. */
const BUSY_BACKOFF_MS = 5;
/** When a controller that threw is run again even if nothing changes. */
const RETRY_AFTER_ERROR_MS = 100;
const KEPT_FAILURES = 20;

/**
 * Runs controllers against a store like kube-controller-manager and the kubelets do: every stored change
 * schedules one batched pass (`setImmediate`) that runs each controller's `sync` in order, and a single
 * timer serves the earliest time-based wake-up any controller asked for. Timers are unref'd, so a
 * simulator nobody stopped does not keep the process alive.
 */
export class ControlLoop {
  readonly #store: ObjectStore;
  readonly #entries: LoopEntry[];
  readonly #log: (message: string) => void;
  /** Absolute wake-up time per controller, from its last sync. */
  readonly #due = new Map<LoopEntry, number>();
  readonly #failures: ControllerFailure[] = [];
  readonly #reported = new Set<string>();
  readonly #waiters = new Set<{ resolve: () => void; reject: (e: unknown) => void; timer: NodeJS.Timeout }>();
  #unsubscribe: (() => void) | undefined;
  #pending: { cancel(): void } | undefined;
  #timer: { handle: NodeJS.Timeout; at: number } | undefined;
  #inPass = false;
  #changes = 0;
  #busyPasses = 0;

  constructor(store: ObjectStore, entries: LoopEntry[], options: ControlLoopOptions = {}) {
    this.#store = store;
    this.#entries = entries;
    this.#log = options.log ?? ((message) => console.warn(message));
  }

  get running(): boolean {
    return this.#unsubscribe !== undefined;
  }

  /** The latest controller failures, oldest first (at most 20). */
  get failures(): readonly ControllerFailure[] {
    return [...this.#failures];
  }

  /** Subscribes to the store and runs a first pass at once (so that, say, nodes exist when it returns). */
  start(): void {
    if (this.running) return;
    this.#unsubscribe = this.#store.onChange(() => {
      this.#changes++;
      this.wake();
    });
    this.#pass();
  }

  /** Cancels every timer and pending pass; waiting `settle` calls reject. */
  stop(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    this.#pending?.cancel();
    this.#pending = undefined;
    if (this.#timer) clearTimeout(this.#timer.handle);
    this.#timer = undefined;
    this.#due.clear();
    for (const w of [...this.#waiters]) {
      clearTimeout(w.timer);
      w.reject(new RunbookError('STOPPED', 'The simulated cluster was stopped before it settled.'));
    }
    this.#waiters.clear();
  }

  /** Schedules one pass soon (batched: many calls before it runs give one pass). */
  wake(): void {
    if (!this.running || this.#pending) return;
    if (this.#busyPasses >= MAX_BUSY_PASSES) {
      const handle = setTimeout(() => this.#pass(), BUSY_BACKOFF_MS);
      handle.unref();
      this.#pending = { cancel: () => clearTimeout(handle) };
    } else {
      // Not unref'd: Node only runs unref'd immediates when something else wakes the event loop, and
      // one pass cannot keep a process alive for long.
      const handle = setImmediate(() => this.#pass());
      this.#pending = { cancel: () => clearImmediate(handle) };
    }
  }

  /**
   * Resolves once no pass is pending and no controller (other than periodic ones) asked to run within the
   * next 50 ms; rejects with a `TIMEOUT` RunbookError after `timeoutMs`.
   */
  settle(timeoutMs: number): Promise<void> {
    if (!this.running) {
      return Promise.reject(
        new RunbookError(
          'NOT_STARTED',
          'The simulated cluster is not running: call start() before settle().',
        ),
      );
    }
    if (this.#settled()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      // This timer is deliberately ref'd: a script awaiting settle() must not exit before it resolves.
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(
          new RunbookError(
            'TIMEOUT',
            `The simulated cluster did not settle within ${timeoutMs}ms: ${this.#busyWith()}. ` +
              'Controllers that keep asking to run (a crash back-off under 50ms, a write loop) prevent it; ' +
              'use a longer crashBackoff or timeoutMs.',
          ),
        );
      }, timeoutMs);
      const waiter = { resolve, reject, timer };
      this.#waiters.add(waiter);
    });
  }

  #pass(): void {
    this.#pending = undefined;
    if (!this.running) return;
    this.#inPass = true;
    const before = this.#changes;
    const now = Date.now();
    try {
      for (const entry of this.#entries) {
        let wait: number | undefined;
        try {
          wait = entry.controller.sync(now);
        } catch (error) {
          this.#fail(entry.controller.name, error);
          wait = RETRY_AFTER_ERROR_MS;
        }
        if (wait === undefined || !Number.isFinite(wait)) this.#due.delete(entry);
        else this.#due.set(entry, now + Math.max(0, wait));
      }
    } finally {
      this.#inPass = false;
    }
    if (this.#changes === before) this.#busyPasses = 0;
    else if (++this.#busyPasses === MAX_BUSY_PASSES) {
      this.#log(
        `Simulated cluster: controllers changed the store in ${MAX_BUSY_PASSES} passes in a row without ` +
          `settling; slowing down to one pass per ${BUSY_BACKOFF_MS}ms. A controller probably rewrites an ` +
          'object on every sync.',
      );
    }
    this.#arm();
    if (this.#settled()) {
      for (const w of [...this.#waiters]) {
        clearTimeout(w.timer);
        w.resolve();
      }
      this.#waiters.clear();
    }
  }

  /** Keeps the one timer on the earliest wake-up requested. */
  #arm(): void {
    const at = Math.min(...this.#due.values());
    if (this.#timer && this.#timer.at === at) return;
    if (this.#timer) clearTimeout(this.#timer.handle);
    this.#timer = undefined;
    if (!Number.isFinite(at)) return;
    const handle = setTimeout(
      () => {
        this.#timer = undefined;
        this.#pass();
      },
      Math.max(0, at - Date.now()),
    );
    handle.unref();
    this.#timer = { handle, at };
  }

  #settled(): boolean {
    if (this.#pending || this.#inPass) return false;
    const next = this.#nextWork();
    return next === undefined || next.at > Date.now() + SETTLE_HORIZON_MS;
  }

  #nextWork(): { at: number; controller: string } | undefined {
    let next: { at: number; controller: string } | undefined;
    for (const [entry, at] of this.#due) {
      if (!entry.periodic && (!next || at < next.at)) next = { at, controller: entry.controller.name };
    }
    return next;
  }

  #busyWith(): string {
    const failure = this.#failures.at(-1);
    const parts = [
      this.#pending ? 'a pass is pending' : undefined,
      this.#busyPasses > 0 ? `the last ${this.#busyPasses} passes all changed the store` : undefined,
      (() => {
        const next = this.#nextWork();
        return next
          ? `${next.controller} asks to run again in ${Math.max(0, next.at - Date.now())}ms`
          : undefined;
      })(),
      failure ? `${failure.controller} last failed with: ${messageOf(failure.error)}` : undefined,
    ].filter(Boolean);
    return parts.join('; ') || 'still busy';
  }

  #fail(controller: string, error: unknown): void {
    this.#failures.push({ controller, error, at: new Date() });
    if (this.#failures.length > KEPT_FAILURES) this.#failures.shift();
    const key = `${controller}: ${messageOf(error)}`;
    if (this.#reported.has(key)) return;
    this.#reported.add(key);
    this.#log(
      `Simulated cluster: the ${controller} controller failed and will be retried: ${messageOf(error)}`,
    );
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
