import { useCallback, useEffect, useRef, useState } from 'react';
import { api, ServiceError } from '../api/client';
import type { RunDetailView, RunEventsPage } from '../api/types';

/** One event of a run (one of its audit entries). */
export type RunEvent = RunEventsPage['events'][number];

/** What the page knows about a run while following it. */
export interface RunPollState {
  /** The run with its steps, approvals, findings and plans; null until first read. */
  detail: RunDetailView | null;
  /** Every event so far, in order. */
  events: RunEvent[];
  /** The run has ended and every event up to its end has been read: polling has stopped. */
  done: boolean;
  /** The last failure; cleared by the next successful read. */
  error: ServiceError | null;
}

/** Whether the page is shown; the default reads `document.visibilityState`. */
export interface Visibility {
  hidden(): boolean;
  /** Calls `listener` when visibility changes; returns the unsubscribe function. */
  subscribe(listener: () => void): () => void;
}

/** Options of {@link RunPoller}. */
export interface RunPollerOptions {
  runId: string;
  /** Called after every change of the state. */
  onChange: (state: RunPollState) => void;
  /**
   * Time between polls, in ms.
   * @default 1500
   */
  intervalMs?: number;
  /** @default the document's visibility */
  visibility?: Visibility;
  /**
   * The service calls.
   * @default `api.runEvents` and `api.getRun`
   */
  source?: {
    runEvents: (runId: string, after: number) => Promise<RunEventsPage>;
    getRun: (runId: string) => Promise<RunDetailView>;
  };
}

/** The default poll interval: often enough to feel live, rare enough for many open pages. */
export const POLL_INTERVAL_MS = 1500;

/** The service's default page of events (`limit`). */
const EVENTS_PAGE_SIZE = 500;

/** These failures will not go away by asking again (no such run, no access), so polling stops. */
const FINAL_FAILURES = new Set([401, 403, 404]);

/** The document's visibility; always visible where there is no document. */
export const documentVisibility: Visibility = {
  hidden: () => typeof document !== 'undefined' && document.visibilityState === 'hidden',
  subscribe(listener) {
    if (typeof document === 'undefined') return () => {};
    document.addEventListener('visibilitychange', listener);
    return () => document.removeEventListener('visibilitychange', listener);
  },
};

/**
 * Follows a run by JSON polling (Grafana's plugin proxy does not promise to pass an event stream through):
 * every `intervalMs` it reads the run's events after the last one it has, and re-reads the run itself when
 * there were new events (each change of a step or approval is an audit entry, hence an event). It stops when
 * the service says `done`, pauses while the page is hidden (and polls at once when it is shown again), and
 * after {@link stop} it never calls `onChange` again, even for a request that was already in flight.
 */
export class RunPoller {
  private state: RunPollState = { detail: null, events: [], done: false, error: null };
  private after = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private inFlight: Promise<void> | null = null;
  private stopped = false;
  private halted = false;
  private unsubscribe: () => void = () => {};
  private readonly intervalMs: number;
  private readonly visibility: Visibility;
  private readonly source: NonNullable<RunPollerOptions['source']>;

  constructor(private readonly options: RunPollerOptions) {
    this.intervalMs = options.intervalMs ?? POLL_INTERVAL_MS;
    this.visibility = options.visibility ?? documentVisibility;
    this.source = options.source ?? { runEvents: api.runEvents, getRun: api.getRun };
  }

  /** Starts polling (the first poll at once). */
  start(): void {
    this.unsubscribe = this.visibility.subscribe(() => {
      if (this.visibility.hidden()) this.clearTimer();
      else void this.poll();
    });
    void this.poll();
  }

  /** Stops for good: no more requests, no more `onChange`. */
  stop(): void {
    this.stopped = true;
    this.clearTimer();
    this.unsubscribe();
  }

  /**
   * Polls now, whatever the schedule (after an approval, a rejection or a cancel), and resumes polling if
   * it had stopped, re-reading the run even without new events. Resolves when the poll is done.
   */
  async refresh(): Promise<void> {
    this.halted = false;
    if (this.inFlight) await this.inFlight;
    await this.poll(true);
  }

  /** The current state. */
  get current(): RunPollState {
    return this.state;
  }

  private clearTimer(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(): void {
    this.clearTimer();
    if (this.stopped || this.halted || this.state.done || this.visibility.hidden()) return;
    this.timer = setTimeout(() => void this.poll(), this.intervalMs);
  }

  private poll(forceRun = false): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.inFlight) return this.inFlight;
    this.clearTimer();
    this.inFlight = this.read(forceRun).finally(() => {
      this.inFlight = null;
      this.schedule();
    });
    return this.inFlight;
  }

  private async read(forceRun: boolean): Promise<void> {
    const { runId } = this.options;
    try {
      const events = [...this.state.events];
      // The cursor moves only with the state (below): if reading the run fails, the events read this time
      // are read again next time instead of being skipped for good.
      let after = this.after;
      let page: RunEventsPage;
      // A long run can have more events than one page holds: a full page means there may be more.
      do {
        page = await this.source.runEvents(runId, after);
        events.push(...page.events);
        after = page.nextAfter;
      } while (!this.stopped && !page.done && page.events.length >= EVENTS_PAGE_SIZE);
      const changed = events.length !== this.state.events.length;
      const detail =
        changed || forceRun || this.state.detail === null || this.state.detail.run.status !== page.status
          ? await this.source.getRun(runId)
          : this.state.detail;
      if (this.stopped) return;
      this.after = after;
      this.update({ detail, events, done: page.done, error: null });
    } catch (e) {
      if (this.stopped) return;
      const error =
        e instanceof ServiceError
          ? e
          : new ServiceError(0, 'UNREACHABLE', e instanceof Error ? e.message : String(e));
      if (FINAL_FAILURES.has(error.status)) this.halted = true;
      this.update({ ...this.state, error });
    }
  }

  private update(state: RunPollState): void {
    this.state = state;
    this.options.onChange(state);
  }
}

/**
 * Follows a run with a {@link RunPoller} for as long as the component is mounted (stopped on unmount, so no
 * state is set afterwards). `refresh` polls at once, for after an action.
 */
export function useRunPolling(
  runId: string,
  intervalMs = POLL_INTERVAL_MS,
): RunPollState & { refresh: () => Promise<void> } {
  const [state, setState] = useState<RunPollState>({ detail: null, events: [], done: false, error: null });
  const poller = useRef<RunPoller | null>(null);
  useEffect(() => {
    setState({ detail: null, events: [], done: false, error: null });
    const p = new RunPoller({ runId, intervalMs, onChange: setState });
    poller.current = p;
    p.start();
    return () => {
      p.stop();
      if (poller.current === p) poller.current = null;
    };
  }, [runId, intervalMs]);
  const refresh = useCallback(() => poller.current?.refresh() ?? Promise.resolve(), []);
  return { ...state, refresh };
}
