import { z } from 'zod';
import { toMillis } from '../core/duration';
import { type Disposable, TypedEvent } from '../core/events';
import { parseOptions } from '../core/parse-options';
import type { Severity } from '../core/runbook';
import type { IncidentUpdates } from './incident-updates';
import { PAGERDUTY_SUMMARY_LIMIT, type PagerDutyClient, truncate } from './pagerduty';
import { verifyPagerDutySignature } from './pagerduty-webhook';
import { type EscalationLevel, EscalationPolicy, SeverityName } from './policy';

/** An incident the escalator follows, as persisted (ISO timestamps, JSON only). */
export const EscalatedIncident = z.object({
  /** The incident's key (the run id for runbook escalations). */
  key: z.string().min(1),
  severity: SeverityName,
  summary: z.string(),
  runbookId: z.string().optional(),
  openedAt: z.iso.datetime(),
  acknowledgedAt: z.iso.datetime().optional(),
  acknowledgedBy: z.string().optional(),
  resolvedAt: z.iso.datetime().optional(),
  resolvedBy: z.string().optional(),
  /** When the acknowledgement deadline passed unacknowledged. */
  overdueAt: z.iso.datetime().optional(),
  /** Level name → when it was paged. A level is never paged twice for one incident. */
  paged: z.record(z.string(), z.iso.datetime()),
  /**
   * Level name → when a page was first sent, answered or not. A trigger that failed (a timeout, say) may still
   * have reached PagerDuty, so acknowledge and resolve go to every level attempted, not only those paged.
   * @default {}
   */
  attempted: z.record(z.string(), z.iso.datetime()).default({}),
  /**
   * PagerDuty acknowledge/resolve calls that failed, retried from `retryAt` on (on the retry timer) until
   * PagerDuty takes them: a page left open would keep ringing someone. @default []
   */
  pendingCalls: z
    .array(
      z.object({
        level: z.string(),
        action: z.enum(['acknowledge', 'resolve']),
        retryAt: z.iso.datetime(),
      }),
    )
    .default([]),
  /** How many cadence status updates were sent. */
  statusUpdates: z.number().int().nonnegative(),
  /** The status page incident opened for it, if any. */
  statusPageId: z.string().optional(),
});
export type EscalatedIncident = z.infer<typeof EscalatedIncident>;

/** Everything the escalator must remember across a restart. */
export const EscalatorState = z.object({
  version: z.literal(1),
  incidents: z.array(EscalatedIncident),
});
export type EscalatorState = z.infer<typeof EscalatorState>;

/** What the escalator did, for listeners (logs, metrics, tests). */
export type EscalationEvent =
  | { type: 'opened'; key: string; at: Date }
  | { type: 'paged'; key: string; level: string; team: string; at: Date }
  | { type: 'overdue'; key: string; at: Date }
  | { type: 'status-update'; key: string; n: number; at: Date }
  | { type: 'acknowledged'; key: string; by: string; at: Date }
  | { type: 'resolved'; key: string; by: string; at: Date }
  | { type: 'error'; key: string; during: string; error: unknown; at: Date };

/** Options of {@link Escalator}. */
export const EscalatorOptions = z.object({
  /** The on-call policy. */
  policy: EscalationPolicy,
  /** Where pages go: one PagerDuty team per level. */
  pagerDuty: z.custom<PagerDutyClient>(
    (v) => typeof (v as PagerDutyClient)?.trigger === 'function',
    'expected a PagerDuty client (pagerDuty(...))',
  ),
  /** Where status updates go (Slack, status page). @default none */
  updates: z
    .custom<IncidentUpdates>(
      (v) => typeof (v as IncidentUpdates)?.update === 'function',
      'expected IncidentUpdates',
    )
    .optional(),
  /** The clock. @default Date.now */
  now: z
    .custom<() => number>((v) => typeof v === 'function', 'expected a function returning ms since the epoch')
    .optional(),
  /** State to resume from (what {@link Escalator.state} returned before a restart). @default no incidents */
  state: EscalatorState.optional(),
  /** Called with the new state after every change, to persist it. @default none */
  onChange: z
    .custom<(state: EscalatorState) => void | Promise<void>>(
      (v) => typeof v === 'function',
      'expected a function',
    )
    .optional(),
  /** How long a resolved incident is kept (for `state()`, reports and repeated escalations). @default 7 days */
  keepResolvedMs: z
    .number()
    .int()
    .nonnegative()
    .default(7 * 24 * 3_600_000),
  /** When a page, an acknowledge or a resolve failed, how soon the timer tries again. @default 30000 */
  retryDelayMs: z.number().int().positive().default(30_000),
  /**
   * The signing secret of the PagerDuty v3 webhook subscription that reports acknowledgements and resolutions
   * made in PagerDuty ({@link Escalator.verifyPagerDutySignature}). A secret: never logged. @default none
   */
  pagerDutyWebhookSecret: z.string().min(1).optional(),
});
export type EscalatorOptions = z.infer<typeof EscalatorOptions>;
/** {@link EscalatorOptions} as written by users. */
export type EscalatorOptionsInput = z.input<typeof EscalatorOptions>;

/** Opening an incident. */
export interface OpenIncident {
  key: string;
  severity: Severity;
  summary: string;
  runbookId?: string;
}

/**
 * Follows open incidents through an {@link EscalationPolicy}: pages each level when it is due (once per incident,
 * dedup key `<incident>:<level>`), marks the acknowledgement deadline, sends status updates on the policy's
 * cadence, stops pending pages on acknowledge (levels with `stopsOn: "acknowledge"`) and everything on resolve
 * (sending PagerDuty `resolve` for every level it paged).
 *
 * Time is read from `now` and work happens in {@link tick}; {@link start} arms one timer for the next due moment.
 * State is JSON ({@link state}) and can be restored after a restart: a tick then catches up on what fell due.
 * Operations are serialized, so concurrent calls never page a level twice.
 */
export class Escalator {
  readonly policy: EscalationPolicy;
  readonly #options: EscalatorOptions;
  readonly #now: () => number;
  readonly #incidents = new Map<string, EscalatedIncident>();
  readonly #events = new TypedEvent<EscalationEvent>();
  #queue: Promise<unknown> = Promise.resolve();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #running = false;
  #retryAt: number | undefined;

  constructor(options: EscalatorOptionsInput) {
    this.#options = parseOptions('Escalator', EscalatorOptions, options);
    this.policy = this.#options.policy;
    this.#now = this.#options.now ?? Date.now;
    for (const incident of this.#options.state?.incidents ?? []) this.#incidents.set(incident.key, incident);
  }

  /** Listens to what the escalator does. */
  onEvent(listener: (event: EscalationEvent) => void): Disposable {
    return this.#events.on(listener);
  }

  /** Arms the timer: due pages and updates are then sent without calling {@link tick}. Ticks once at once. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    void this.tick();
  }

  /** Disarms the timer. Incidents stay as they are. */
  stop(): void {
    this.#running = false;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Resolves when every operation started so far has finished (for tests and shutdown). */
  settled(): Promise<void> {
    return this.#queue.then(() => undefined);
  }

  /** A copy of the state, as JSON. */
  state(): EscalatorState {
    return structuredClone({ version: 1 as const, incidents: [...this.#incidents.values()] });
  }

  /** One incident's state, or undefined. */
  incident(key: string): EscalatedIncident | undefined {
    const incident = this.#incidents.get(key);
    return incident ? structuredClone(incident) : undefined;
  }

  /**
   * Opens an incident and pages what is due now (level 1). Opening a key that is already known changes nothing
   * (a repeated escalation of one run must not page anyone again).
   */
  open(incident: OpenIncident): Promise<EscalatedIncident> {
    return this.#serial(async () => {
      const known = this.#incidents.get(incident.key);
      if (known) return structuredClone(known);
      const now = this.#now();
      const opened: EscalatedIncident = {
        key: incident.key,
        severity: incident.severity,
        summary: incident.summary,
        ...(incident.runbookId ? { runbookId: incident.runbookId } : {}),
        openedAt: new Date(now).toISOString(),
        paged: {},
        attempted: {},
        pendingCalls: [],
        statusUpdates: 0,
      };
      this.#incidents.set(incident.key, opened);
      this.#emit({ type: 'opened', key: incident.key, at: new Date(now) });
      if (this.#cadenceApplies(opened) && this.#options.updates?.opened) {
        try {
          const ref = await this.#options.updates.opened(structuredClone(opened));
          if (ref?.statusPageId) opened.statusPageId = ref.statusPageId;
        } catch (error) {
          this.#emit({ type: 'error', key: opened.key, during: 'opened', error, at: new Date(now) });
        }
      }
      await this.#work(now);
      return structuredClone(opened);
    });
  }

  /** Someone took the incident: pending levels that stop on acknowledge are cancelled; PagerDuty is told. */
  acknowledge(key: string, by: string): Promise<EscalatedIncident> {
    return this.#serial(async () => {
      const incident = this.#require(key);
      if (incident.acknowledgedAt || incident.resolvedAt) return structuredClone(incident);
      const now = this.#now();
      incident.acknowledgedAt = new Date(now).toISOString();
      incident.acknowledgedBy = by;
      this.#emit({ type: 'acknowledged', key, by, at: new Date(now) });
      await this.#tellPaged(incident, 'acknowledge', now);
      await this.#options.updates?.acknowledged?.(structuredClone(incident)).catch((error: unknown) => {
        this.#emit({ type: 'error', key, during: 'acknowledged', error, at: new Date(now) });
      });
      return structuredClone(incident);
    });
  }

  /** The incident is over: nothing more is paged or posted; every level paged gets a PagerDuty `resolve`. */
  resolve(key: string, by: string): Promise<EscalatedIncident> {
    return this.#serial(async () => {
      const incident = this.#require(key);
      if (incident.resolvedAt) return structuredClone(incident);
      const now = this.#now();
      incident.resolvedAt = new Date(now).toISOString();
      incident.resolvedBy = by;
      this.#emit({ type: 'resolved', key, by, at: new Date(now) });
      await this.#tellPaged(incident, 'resolve', now);
      if (this.#cadenceApplies(incident)) {
        await this.#options.updates?.resolved?.(structuredClone(incident)).catch((error: unknown) => {
          this.#emit({ type: 'error', key, during: 'resolved', error, at: new Date(now) });
        });
      }
      return structuredClone(incident);
    });
  }

  /** Does what is due at `now`: pages, the acknowledgement deadline, status updates. */
  tick(now: number = this.#now()): Promise<void> {
    return this.#serial(() => this.#work(now));
  }

  /** The PagerDuty dedup key of one level's page for an incident. */
  static dedupKey(incidentKey: string, level: string): string {
    return `${incidentKey}:${level}`;
  }

  /** True when a PagerDuty webhook signing secret is configured (`pagerDutyWebhookSecret`). */
  get acceptsPagerDutyWebhooks(): boolean {
    return this.#options.pagerDutyWebhookSecret !== undefined;
  }

  /**
   * True when `signature` (the `X-PagerDuty-Signature` header) holds a `v1=` HMAC-SHA256 of `rawBody` under the
   * webhook secret. False without a secret, a header or a match.
   */
  verifyPagerDutySignature(rawBody: Buffer, signature: string | undefined): boolean {
    const secret = this.#options.pagerDutyWebhookSecret;
    return secret !== undefined && verifyPagerDutySignature(secret, rawBody, signature);
  }

  /**
   * The incident and level a PagerDuty incident belongs to: by its `incident_key` (the dedup key
   * `<incident>:<level>` of the page), else by its title, which ends with `key <incident>:<level>)` (PagerDuty
   * titles an Events v2 incident with the trigger's summary). Only levels paged or attempted match.
   */
  pageOf(found: {
    incidentKey?: string | null;
    title?: string | null;
  }): { key: string; level: string } | undefined {
    for (const incident of this.#incidents.values()) {
      for (const level of this.policy.levels) {
        if (!incident.paged[level.name] && !incident.attempted[level.name]) continue;
        const dedupKey = Escalator.dedupKey(incident.key, level.name);
        if (found.incidentKey === dedupKey || found.title?.endsWith(`key ${dedupKey})`)) {
          return { key: incident.key, level: level.name };
        }
      }
    }
    return undefined;
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(fn);
    this.#queue = next.then(
      async () => this.#afterChange(),
      async () => this.#afterChange(),
    );
    return next;
  }

  async #afterChange(): Promise<void> {
    this.#schedule();
    await this.#persist();
  }

  #require(key: string): EscalatedIncident {
    const incident = this.#incidents.get(key);
    if (!incident) {
      throw new TypeError(
        `No open incident "${key}" in escalation policy "${this.policy.name}": open it first (escalator.open).`,
      );
    }
    return incident;
  }

  #applies(level: EscalationLevel, incident: EscalatedIncident): boolean {
    return level.severities.includes(incident.severity);
  }

  #pending(level: EscalationLevel, incident: EscalatedIncident): boolean {
    if (incident.resolvedAt || incident.paged[level.name] || !this.#applies(level, incident)) return false;
    return !(level.stopsOn === 'acknowledge' && incident.acknowledgedAt);
  }

  #cadenceApplies(incident: EscalatedIncident): boolean {
    return this.policy.statusUpdates.severities.includes(incident.severity);
  }

  async #work(now: number): Promise<void> {
    this.#retryAt = undefined;
    for (const incident of [...this.#incidents.values()]) {
      await this.#retryCalls(incident, now);
      if (incident.resolvedAt) {
        // Forgotten after a while, so a long-running service's state does not grow without bound.
        if (now - Date.parse(incident.resolvedAt) > this.#options.keepResolvedMs)
          this.#incidents.delete(incident.key);
        continue;
      }
      const opened = Date.parse(incident.openedAt);
      if (
        !incident.acknowledgedAt &&
        !incident.overdueAt &&
        now >= opened + toMillis(this.policy.acknowledgeWithin)
      ) {
        incident.overdueAt = new Date(now).toISOString();
        this.#emit({ type: 'overdue', key: incident.key, at: new Date(now) });
        await this.#options.updates?.overdue?.(structuredClone(incident)).catch((error: unknown) => {
          this.#emit({ type: 'error', key: incident.key, during: 'overdue', error, at: new Date(now) });
        });
      }
      for (const [index, level] of this.policy.levels.entries()) {
        if (!this.#pending(level, incident) || now < opened + toMillis(level.after)) continue;
        if (!incident.attempted[level.name]) {
          incident.attempted[level.name] = new Date(now).toISOString();
          // Saved before the call: after a crash mid-call, resolve still reaches a page PagerDuty may have taken.
          await this.#persist();
        }
        try {
          await this.#options.pagerDuty.trigger({
            team: level.team,
            dedupKey: Escalator.dedupKey(incident.key, level.name),
            summary: pageSummary(incident, index, level),
            severity: incident.severity,
            ...(incident.runbookId ? { component: incident.runbookId } : {}),
            customDetails: {
              incident: incident.key,
              level: level.name,
              openedAt: incident.openedAt,
              policy: this.policy.name,
            },
          });
          incident.paged[level.name] = new Date(now).toISOString();
          this.#emit({
            type: 'paged',
            key: incident.key,
            level: level.name,
            team: level.team,
            at: new Date(now),
          });
        } catch (error) {
          this.#emit({
            type: 'error',
            key: incident.key,
            during: `page ${level.name}`,
            error,
            at: new Date(now),
          });
          this.#retryAt = now + this.#options.retryDelayMs;
        }
      }
      if (this.#cadenceApplies(incident) && this.#options.updates) {
        const every = toMillis(this.policy.statusUpdates.every);
        const due = Math.floor((now - opened) / every);
        if (due > incident.statusUpdates) {
          // One update for however many periods passed (after a restart), not a burst of them.
          incident.statusUpdates = due;
          this.#emit({ type: 'status-update', key: incident.key, n: due, at: new Date(now) });
          await this.#options.updates
            .update(structuredClone(incident), new Date(now))
            .catch((error: unknown) => {
              this.#emit({
                type: 'error',
                key: incident.key,
                during: 'status-update',
                error,
                at: new Date(now),
              });
            });
        }
      }
    }
  }

  async #tellPaged(
    incident: EscalatedIncident,
    action: 'acknowledge' | 'resolve',
    now: number,
  ): Promise<void> {
    for (const level of this.policy.levels) {
      if (!incident.paged[level.name] && !incident.attempted[level.name]) continue;
      // A newer call for the level replaces one still waiting (a resolve supersedes an acknowledge).
      incident.pendingCalls = incident.pendingCalls.filter((c) => c.level !== level.name);
      await this.#call(incident, level, action, now);
    }
  }

  /** Sends one acknowledge/resolve; a failure is queued for the retry timer. */
  async #call(
    incident: EscalatedIncident,
    level: EscalationLevel,
    action: 'acknowledge' | 'resolve',
    now: number,
  ): Promise<void> {
    try {
      await this.#options.pagerDuty[action]({
        team: level.team,
        dedupKey: Escalator.dedupKey(incident.key, level.name),
      });
    } catch (error) {
      this.#emit({
        type: 'error',
        key: incident.key,
        during: `${action} ${level.name}`,
        error,
        at: new Date(now),
      });
      incident.pendingCalls.push({
        level: level.name,
        action,
        retryAt: new Date(now + this.#options.retryDelayMs).toISOString(),
      });
    }
  }

  /** Retries the acknowledge/resolve calls of an incident whose time came. */
  async #retryCalls(incident: EscalatedIncident, now: number): Promise<void> {
    const due = incident.pendingCalls.filter((c) => Date.parse(c.retryAt) <= now);
    if (!due.length) return;
    incident.pendingCalls = incident.pendingCalls.filter((c) => Date.parse(c.retryAt) > now);
    for (const call of due) {
      const level = this.policy.levels.find((l) => l.name === call.level);
      // A level the policy no longer has (changed across a restart) has no team to call.
      if (level) await this.#call(incident, level, call.action, now);
    }
  }

  async #persist(): Promise<void> {
    if (!this.#options.onChange) return;
    try {
      await this.#options.onChange(this.state());
    } catch {
      // Persisting is best effort: the in-memory state is still right, and the next change tries again.
    }
  }

  /** The next moment something falls due, or undefined when nothing will. */
  nextDueAt(): number | undefined {
    let next: number | undefined;
    const consider = (at: number) => {
      if (next === undefined || at < next) next = at;
    };
    for (const incident of this.#incidents.values()) {
      for (const call of incident.pendingCalls) consider(Date.parse(call.retryAt));
      if (incident.resolvedAt) continue;
      const opened = Date.parse(incident.openedAt);
      if (!incident.acknowledgedAt && !incident.overdueAt)
        consider(opened + toMillis(this.policy.acknowledgeWithin));
      for (const level of this.policy.levels) {
        // A page that just failed waits for the retry delay rather than being retried at once.
        if (this.#pending(level, incident))
          consider(Math.max(opened + toMillis(level.after), this.#retryAt ?? 0));
      }
      if (this.#cadenceApplies(incident) && this.#options.updates) {
        consider(opened + (incident.statusUpdates + 1) * toMillis(this.policy.statusUpdates.every));
      }
    }
    return next;
  }

  #schedule(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (!this.#running) return;
    const next = this.nextDueAt();
    if (next === undefined) return;
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined;
        void this.tick();
      },
      Math.max(0, next - this.#now()),
    );
    // The escalator must not keep a process alive on its own (a CLI run that escalated, say).
    this.#timer.unref?.();
  }

  #emit(event: EscalationEvent): void {
    this.#events.emit(event);
  }
}

/**
 * A level's page: the incident's summary, the level, and the page's dedup key last (cut from the summary, never
 * from the key, to fit PagerDuty's limit), so a PagerDuty webhook without `incident_key` still names the page by
 * its title.
 */
function pageSummary(incident: EscalatedIncident, index: number, level: EscalationLevel): string {
  const tail = ` (escalation level ${index + 1}: ${level.title ?? level.name}, key ${Escalator.dedupKey(incident.key, level.name)})`;
  return `${truncate(`[${incident.severity}] ${incident.summary}`, Math.max(1, PAGERDUTY_SUMMARY_LIMIT - tail.length))}${tail}`;
}
