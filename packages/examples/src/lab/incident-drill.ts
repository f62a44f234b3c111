/**
 * One incident, end to end, the way production would live it: the lab injects a scenario, Prometheus fires
 * the manual's alert, Alertmanager delivers it, the runbook service runs the routed runbook, a second person
 * approves where policy asks, and the lab is healthy again. Timed at each stage; used by the end-to-end
 * tests and by `pnpm bench` (the MTTR table).
 */
import { readFile } from 'node:fs/promises';
import type { LabUp } from './lab-up';
import { SCENARIO_CATALOG, type ScenarioName } from './scenarios';

/** A run as `GET /api/v1/runs/:id` shows it (the fields the drill reads). */
export interface RunDetail {
  run: {
    id: string;
    runbookId: string;
    status: string;
    createdAt: string;
    context: Record<string, unknown> | null;
  };
  steps: { name: string; kind: string; status: string; result: unknown }[];
  findings: { step: string; status: string; summary: string }[];
  plans: { step: string; summary: string; changes: unknown[] }[];
  approvals: { step: string; status: string; decidedBy: string | null }[];
}

/** What one drill measured, in ms from the injection. */
export interface DrillResult {
  scenario: ScenarioName;
  runbook: string;
  alertname: string;
  /** The alert firing in Prometheus. */
  detectMs: number;
  /** The run's diagnosis done: its first plan made, or it ended. */
  diagnoseMs: number;
  /** The run ended (succeeded). */
  recoverMs: number;
  /** The lab's health checks for this incident all ok. */
  verifyMs: number;
  approvals: number;
  run: RunDetail;
  auditOk: boolean;
}

const FINAL = new Set(['succeeded', 'failed', 'escalated', 'cancelled']);

async function poll<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  for (;;) {
    const value = await probe().catch((e: unknown) => {
      // Services restarting answer errors for a while; the last one explains a timeout.
      lastError = e instanceof Error ? e.message : String(e);
      return undefined;
    });
    if (value !== undefined) return value;
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${lastError})` : ''}`,
      );
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** The running `up`'s service, Prometheus and control API, for drills. */
export class IncidentDrill {
  readonly #up: LabUp;
  readonly #oncall: string;
  readonly #approver: string;

  private constructor(up: LabUp, oncall: string, approver: string) {
    this.#up = up;
    this.#oncall = oncall;
    this.#approver = approver;
  }

  static async on(up: LabUp): Promise<IncidentDrill> {
    const files = up.file.tokenFiles;
    if (!up.file.serviceUrl || !up.file.prometheusUrl || !files)
      throw new Error('drills need the lab started with the runbook service and Prometheus (serve: true)');
    return new IncidentDrill(
      up,
      await readFile(files.oncall, 'utf8'),
      await readFile(files.approver, 'utf8'),
    );
  }

  async #service<T>(method: 'GET' | 'POST', path: string, token = this.#oncall, body?: unknown): Promise<T> {
    const response = await fetch(`${this.#up.file.serviceUrl}/api/v1${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(30_000),
    });
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`);
    return (await response.json()) as T;
  }

  /** The firing alerts in Prometheus, by alertname. */
  async firing(): Promise<{ alertname: string; runbook: string; state: string }[]> {
    const response = await fetch(`${this.#up.file.prometheusUrl}/api/v1/alerts`);
    const body = (await response.json()) as {
      data: { alerts: { labels: Record<string, string>; state: string }[] };
    };
    return body.data.alerts.map((a) => ({
      alertname: a.labels.alertname ?? '',
      runbook: a.labels.runbook ?? '',
      state: a.state,
    }));
  }

  run(runId: string): Promise<RunDetail> {
    return this.#service<RunDetail>('GET', `/runs/${encodeURIComponent(runId)}`);
  }

  /**
   * Follows a run to its end, approving as the second person whenever it waits (`reason` says why), and
   * calling `observe` with every state seen.
   */
  async #follow(
    runId: string,
    timeoutMs: number,
    observe: (detail: RunDetail) => void,
    reason: string,
  ): Promise<{ detail: RunDetail; approvals: number }> {
    let approvals = 0;
    const detail = await poll(`run ${runId} to end`, timeoutMs, async () => {
      const detail = await this.run(runId);
      observe(detail);
      if (detail.run.status === 'waiting_approval') {
        // The second person: another admin than the identity that started the run.
        await this.#service('POST', `/runs/${encodeURIComponent(runId)}/approve`, this.#approver, {
          reason: `incident drill: ${reason}`,
        });
        approvals += 1;
      }
      return FINAL.has(detail.run.status) ? detail : undefined;
    });
    return { detail, approvals };
  }

  /** Starts a run by hand as the on-call engineer (execute mode), approves it as the second person, and waits for its end. */
  async execute(runbookId: string, input: Record<string, unknown>, timeoutMs = 180_000): Promise<RunDetail> {
    // An execute run is queued: the answer (202) carries its id only.
    const { runId } = await this.#service<{ runId: string }>('POST', '/runs', this.#oncall, {
      runbookId,
      mode: 'execute',
      input,
    });
    return (await this.#follow(runId, timeoutMs, () => {}, `${runbookId} by hand`)).detail;
  }

  /** Injects `scenario` and follows it to a verified recovery. */
  async drill(
    scenario: ScenarioName,
    options: {
      /** Names (prefixes) of the lab's health checks that must pass for the incident to count as over. */
      healthChecks: string[];
      /** More proof of recovery, for incidents the runbook mitigates rather than mends (a provider outage). */
      verify?: () => Promise<boolean>;
      timeoutMs?: number;
    },
  ): Promise<DrillResult> {
    const timeoutMs = options.timeoutMs ?? 180_000;
    const runbook = SCENARIO_CATALOG[scenario].runbook;
    const started = Date.now();
    const since = new Date(started).toISOString();
    const elapsed = () => Date.now() - started;
    await this.#up.control.inject(scenario);

    const alert = await poll(`the alert for ${runbook} to fire`, timeoutMs, async () =>
      (await this.firing()).find((a) => a.runbook === runbook && a.state === 'firing'),
    );
    const detectMs = elapsed();

    const runId = await poll(`a ${runbook} run started by the alert`, timeoutMs, async () => {
      const { runs } = await this.#service<{ runs: { id: string; createdAt: string; context: unknown }[] }>(
        'GET',
        `/runs?runbookId=${encodeURIComponent(runbook)}&limit=5`,
      );
      return runs.find((r) => r.createdAt >= since && r.context !== null)?.id;
    });

    let diagnoseMs: number | undefined;
    const { detail: final, approvals } = await this.#follow(
      runId,
      timeoutMs,
      (detail) => {
        if (diagnoseMs === undefined && (detail.plans.length > 0 || FINAL.has(detail.run.status)))
          diagnoseMs = elapsed();
      },
      scenario,
    );
    const recoverMs = elapsed();

    await poll(`the lab checks ${options.healthChecks.join(', ')} to pass`, timeoutMs, async () => {
      const response = await fetch(`${this.#up.control.url}/health`);
      const report = (await response.json()) as { checks: { name: string; ok: boolean }[] };
      const wanted = report.checks.filter((c) => options.healthChecks.some((n) => c.name.startsWith(n)));
      if (wanted.length === 0 || !wanted.every((c) => c.ok)) return undefined;
      return (await (options.verify?.() ?? true)) ? true : undefined;
    });
    const verifyMs = elapsed();
    const audit = await this.#service<{ ok: boolean }>('GET', '/audit/verify');
    return {
      scenario,
      runbook,
      alertname: alert.alertname,
      detectMs,
      diagnoseMs: diagnoseMs ?? recoverMs,
      recoverMs,
      verifyMs,
      approvals,
      run: final,
      auditOk: audit.ok,
    };
  }
}
