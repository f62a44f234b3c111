import type { ErrorInfo } from '../core/errors';
import { canonicalJson, type Json } from '../core/json';
import type { RunMode } from '../core/step';
import type { Queryable, SqlDriver } from './driver';
import { MIGRATIONS } from './migrations';
import type {
  ApprovalRecord,
  AuditEntry,
  AuditRow,
  BeginActionResult,
  ExpiringActionRecord,
  Fence,
  LockRecord,
  RunApproval,
  RunRecord,
  RunStatus,
  StepRecord,
  StepWrite,
} from './records';

type Row = Record<string, unknown>;

const json = (value: unknown): string | null =>
  value === undefined || value === null ? null : JSON.stringify(value);
const iso = (d: Date | null | undefined): string | null => (d ? d.toISOString() : null);
const date = (v: unknown): Date | null =>
  v === null || v === undefined ? null : v instanceof Date ? v : new Date(String(v));
const auditText = (entry: AuditEntry): string => canonicalJson(entry);

/**
 * The audit append as two CTEs: advance the head (its row lock serializes appenders), then insert the link.
 * Gated on `gate` so that an entry is written exactly when the change it describes is.
 */
function auditCtes(entryParam: number, gate?: string): string {
  const when = gate ? `AND EXISTS (SELECT 1 FROM ${gate})` : '';
  return `audit_link AS (
    UPDATE audit_head
       SET seq = seq + 1, prev_hash = hash,
           hash = encode(sha256(convert_to(hash || '|' || (seq + 1)::text || '|' || $${entryParam}::text, 'UTF8')), 'hex')
     WHERE id = 1 ${when}
     RETURNING seq, prev_hash, hash),
  audit_row AS (
    INSERT INTO audit (seq, entry, prev_hash, hash, run_id)
    SELECT seq, $${entryParam}::text, prev_hash, hash, $${entryParam}::jsonb ->> 'runId' FROM audit_link RETURNING seq)`;
}

// $1 run id, $2 owner, $3 now, $4 lease until.
// The fence locks the run row (FOR SHARE) instead of updating it: a process taking the run over updates
// the row, so a write racing with it waits and then re-checks the owner. The lease itself is extended by
// the heartbeat, not by every step.
const FENCE_CTE = `fence AS (
    SELECT id FROM runs
     WHERE id = $1 AND lease_owner = $2 AND status = 'running' AND $3::timestamptz <= $4::timestamptz
     FOR SHARE)`;
const fenceParams = (f: Fence) => [f.runId, f.owner, iso(f.now), iso(f.leaseUntil)];

// Step upsert from a gate CTE; parameters start at `p`.
function stepUpsertCte(p: number, from: string): string {
  return `step_row AS (
    INSERT INTO steps (run_id, name, kind, status, result, error, attempts, started_at, ended_at, seq)
    SELECT $1, $${p}, $${p + 1}, $${p + 2}, $${p + 3}::jsonb, $${p + 4}::jsonb, $${p + 5}, $${p + 6}, $${p + 7}, $${p + 8} FROM ${from}
    ON CONFLICT (run_id, name) DO UPDATE
       SET status = EXCLUDED.status, result = EXCLUDED.result, error = EXCLUDED.error,
           attempts = EXCLUDED.attempts, started_at = EXCLUDED.started_at, ended_at = EXCLUDED.ended_at
    RETURNING run_id)`;
}
const stepParams = (s: StepWrite) => [
  s.name,
  s.kind,
  s.status,
  json(s.result),
  json(s.error),
  s.attempts,
  iso(s.startedAt),
  iso(s.endedAt),
  s.seq,
];

// The statements, built once: the driver prepares each by its text.
// A key already used by the same requester inserts nothing (and so audits nothing): the caller reads the
// existing run instead.
const CREATE_RUN_SQL = `WITH ins AS (
         INSERT INTO runs (id, runbook_id, mode, input, status, requested_by, created_at, updated_at, started_at, lease_owner, lease_expires_at, attempts, context, idempotency_key, approval)
         VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $7, $8, $9, $10, $11, $13::jsonb, $14, $15)
         ON CONFLICT (requested_by, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
         RETURNING *),
       ${auditCtes(12, 'ins')}
       SELECT * FROM ins`;

const FINISH_RUN_SQL = `WITH fin AS (
         UPDATE runs SET status = $5, outcome = $6::jsonb, error = $7::jsonb, ended_at = $3, updated_at = $3,
                         lease_owner = NULL, lease_expires_at = NULL
          WHERE id = $1 AND lease_owner = $2 AND status = 'running' AND $4::timestamptz IS NOT NULL
          RETURNING id),
       unlock AS (DELETE FROM locks WHERE run_id = $1 AND EXISTS (SELECT 1 FROM fin)),
       ${auditCtes(8, 'fin')}
       SELECT count(*)::int AS n FROM fin`;

const SUSPEND_RUN_SQL = `WITH s AS (
         UPDATE runs SET status = 'waiting_approval', lease_owner = NULL, lease_expires_at = NULL, updated_at = $3
          WHERE id = $1 AND lease_owner = $2 AND status = 'running' AND $4::timestamptz IS NOT NULL
          RETURNING id),
       unlock AS (DELETE FROM locks WHERE run_id = $1 AND EXISTS (SELECT 1 FROM s)),
       ${auditCtes(5, 's')}
       SELECT count(*)::int AS n FROM s`;

// Queued rather than "running with an expired lease": claimers compare leases with their own clocks.
// Locks stay: the next owner of the run re-takes its step's lock (same run and step), nobody else can.
const RELEASE_RUN_SQL = `WITH r AS (
         UPDATE runs SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL, updated_at = $3
          WHERE id = $1 AND lease_owner = $2 AND status = 'running' AND $4::timestamptz IS NOT NULL
          RETURNING id),
       ${auditCtes(5, 'r')}
       SELECT count(*)::int AS n FROM r`;

const RECORD_STEP_SQL = `WITH ${FENCE_CTE},
       ${stepUpsertCte(5, 'fence')},
       ${auditCtes(14, 'step_row')}
       SELECT count(*)::int AS n FROM step_row`;

const BEGIN_ACTION_SQL = `WITH ${FENCE_CTE},
       lock_row AS (
         INSERT INTO locks (resource, run_id, step, owner, expires_at)
         SELECT $15, id, $5, $2, $16 FROM fence
          WHERE $17::int IS NULL
             OR EXISTS (SELECT 1 FROM budget_spend WHERE run_id = $1 AND step = $5)
             OR (SELECT count(*) FROM budget_spend WHERE resource = $15 AND action = $18 AND spent_at > $19) < $17::int
         ON CONFLICT (resource) DO UPDATE
            SET run_id = EXCLUDED.run_id, step = EXCLUDED.step, owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at
          WHERE locks.expires_at < $3 OR (locks.run_id = EXCLUDED.run_id AND locks.step = EXCLUDED.step)
         RETURNING resource),
       spend AS (
         INSERT INTO budget_spend (resource, action, run_id, step, spent_at)
         SELECT $15, $18, $1, $5, $3 FROM lock_row
          WHERE $17::int IS NOT NULL AND NOT EXISTS (SELECT 1 FROM budget_spend WHERE run_id = $1 AND step = $5)),
       ${stepUpsertCte(5, 'lock_row')},
       ${auditCtes(14, 'step_row')}
       SELECT (SELECT count(*) FROM fence)::int AS fenced, (SELECT count(*) FROM lock_row)::int AS locked`;

const FINISH_ACTION_SQL = `WITH ${FENCE_CTE},
       ${stepUpsertCte(5, 'fence')},
       unlock AS (DELETE FROM locks WHERE resource = $15 AND run_id = $1 AND EXISTS (SELECT 1 FROM step_row)),
       expiring AS (
         INSERT INTO expiring_actions (run_id, step, resource, action, revert_at, status)
         SELECT $1, $5, $15, $16, $17, 'pending' FROM step_row WHERE $17::timestamptz IS NOT NULL
         ON CONFLICT (run_id, step) DO NOTHING),
       ${auditCtes(14, 'step_row')}
       SELECT count(*)::int AS n FROM step_row`;

const COMPLETE_EXPIRING_SQL = `WITH done AS (
         UPDATE expiring_actions SET status = $4, error = $5::jsonb, claimed_by = NULL, claim_expires_at = NULL
          WHERE run_id = $1 AND step = $2 AND claimed_by = $3 AND status = 'pending'
          RETURNING run_id),
       ${auditCtes(6, 'done')}
       SELECT count(*)::int AS n FROM done`;

const APPEND_AUDIT_SQL = `WITH ${auditCtes(1)} SELECT 1`;

function toRun(r: Row): RunRecord {
  return {
    id: r.id as string,
    runbookId: r.runbook_id as string,
    mode: r.mode as RunMode,
    input: r.input as Json,
    status: r.status as RunStatus,
    requestedBy: r.requested_by as string,
    createdAt: date(r.created_at) as Date,
    updatedAt: date(r.updated_at) as Date,
    startedAt: date(r.started_at),
    endedAt: date(r.ended_at),
    outcome: (r.outcome ?? null) as Json | null,
    error: (r.error ?? null) as ErrorInfo | null,
    leaseOwner: (r.lease_owner ?? null) as string | null,
    leaseExpiresAt: date(r.lease_expires_at),
    cancelRequested: (r.cancel_requested ?? null) as string | null,
    attempts: Number(r.attempts),
    context: (r.context ?? null) as Json | null,
    idempotencyKey: (r.idempotency_key ?? null) as string | null,
    approval: (r.approval ?? 'policy') as RunApproval,
  };
}

function toStep(r: Row): StepRecord {
  return {
    runId: r.run_id as string,
    name: r.name as string,
    seq: Number(r.seq),
    kind: r.kind as StepRecord['kind'],
    status: r.status as StepRecord['status'],
    result: (r.result ?? null) as Json | null,
    error: (r.error ?? null) as ErrorInfo | null,
    attempts: Number(r.attempts),
    startedAt: date(r.started_at) as Date,
    endedAt: date(r.ended_at),
  };
}

function toApproval(r: Row): ApprovalRecord {
  return {
    id: r.id as string,
    runId: r.run_id as string,
    step: r.step as string,
    planHash: r.plan_hash as string,
    plan: r.plan as Json,
    status: r.status as ApprovalRecord['status'],
    requestedBy: r.requested_by as string,
    requestedAt: date(r.requested_at) as Date,
    expiresAt: date(r.expires_at) as Date,
    decidedBy: (r.decided_by ?? null) as string | null,
    decidedAt: date(r.decided_at),
    reason: (r.reason ?? null) as string | null,
    breakGlass: Boolean(r.break_glass),
  };
}

function toAuditRow(r: { seq: number; entry: string; prev_hash: string; hash: string }): AuditRow {
  return { seq: Number(r.seq), entry: r.entry, prevHash: r.prev_hash, hash: r.hash };
}

function toLock(r: Row): LockRecord {
  return {
    resource: r.resource as string,
    runId: r.run_id as string,
    step: r.step as string,
    owner: r.owner as string,
    expiresAt: date(r.expires_at) as Date,
  };
}

function toExpiring(r: Row): ExpiringActionRecord {
  return {
    runId: r.run_id as string,
    step: r.step as string,
    resource: r.resource as string,
    action: r.action as string,
    revertAt: date(r.revert_at) as Date,
    status: r.status as ExpiringActionRecord['status'],
  };
}

/** A new run. */
export interface NewRun {
  id: string;
  runbookId: string;
  mode: RunMode;
  input: Json;
  requestedBy: string;
  now: Date;
  /** Where the run came from; stored as given (redact before). */
  context?: Json;
  /** The requester's key: a second run with the same key and requester is not created. */
  idempotencyKey?: string;
  /** @default "policy" */
  approval?: RunApproval;
  /** Claim it for this owner right away (inline execution) instead of queueing it for a worker. */
  claim?: { owner: string; leaseUntil: Date };
}

/** Filters for {@link RunStore.listRuns}. */
export interface RunFilter {
  status?: RunStatus;
  runbookId?: string;
  /** @default 50 */
  limit?: number;
  /** Only runs listed after this one (newest first): pass the last run of the previous page. */
  after?: RunCursor;
}

/** A position in the newest-first list of runs. */
export interface RunCursor {
  createdAt: Date;
  id: string;
}

/**
 * Durable state of runs: runs, steps, approvals, lease locks, budgets, expiring actions and the audit log,
 * on one SQL schema that PostgreSQL and PGlite share. Writes made while executing a run are fenced by the
 * run's lease and, where the engine's speed depends on it, made in a single statement with their audit entry.
 */
export class RunStore {
  constructor(readonly driver: SqlDriver) {}

  /** Applies pending migrations. Safe to call from several processes at once. */
  async migrate(): Promise<void> {
    await this.driver.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock(7262011)');
      await tx.query(
        'CREATE TABLE IF NOT EXISTS runbook_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())',
      );
      const done = new Set(
        (await tx.query<{ version: number }>('SELECT version FROM runbook_migrations')).map((r) =>
          Number(r.version),
        ),
      );
      for (const m of MIGRATIONS) {
        if (done.has(m.version)) continue;
        for (const statement of splitStatements(m.sql)) await tx.query(statement);
        await tx.query('INSERT INTO runbook_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
      }
    });
  }

  close(): Promise<void> {
    return this.driver.close();
  }

  // ---- runs ----

  /**
   * Creates a run and its `run.created` audit entry in one statement. When the requester already used
   * `run.idempotencyKey`, nothing is written and the existing run comes back with `created: false`.
   */
  async createRun(run: NewRun, audit: AuditEntry): Promise<{ run: RunRecord; created: boolean }> {
    const rows = await this.driver.query(CREATE_RUN_SQL, [
      run.id,
      run.runbookId,
      run.mode,
      json(run.input),
      run.claim ? 'running' : 'queued',
      run.requestedBy,
      iso(run.now),
      run.claim ? iso(run.now) : null,
      run.claim?.owner ?? null,
      iso(run.claim?.leaseUntil),
      run.claim ? 1 : 0,
      auditText(audit),
      json(run.context),
      run.idempotencyKey ?? null,
      run.approval ?? 'policy',
    ]);
    if (rows[0]) return { run: toRun(rows[0]), created: true };
    const existing = await this.driver.query(
      'SELECT * FROM runs WHERE requested_by = $1 AND idempotency_key = $2',
      [run.requestedBy, run.idempotencyKey ?? null],
    );
    if (!existing[0]) throw new Error(`Run ${run.id} was neither created nor found by its idempotency key.`);
    return { run: toRun(existing[0]), created: false };
  }

  async getRun(id: string): Promise<RunRecord | undefined> {
    const rows = await this.driver.query('SELECT * FROM runs WHERE id = $1', [id]);
    return rows[0] ? toRun(rows[0]) : undefined;
  }

  async listRuns(filter: RunFilter = {}): Promise<RunRecord[]> {
    const rows = await this.driver.query(
      `SELECT * FROM runs
        WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR runbook_id = $2)
          AND ($4::timestamptz IS NULL OR (created_at, id) < ($4::timestamptz, $5::text))
        ORDER BY created_at DESC, id DESC LIMIT $3`,
      [
        filter.status ?? null,
        filter.runbookId ?? null,
        filter.limit ?? 50,
        iso(filter.after?.createdAt),
        filter.after?.id ?? null,
      ],
    );
    return rows.map(toRun);
  }

  /**
   * Claims the oldest run of one of `runbookIds` that is queued, or running under an expired lease (its
   * process died), with `FOR UPDATE SKIP LOCKED`: concurrent claimers never get the same run. `lease` is the
   * claim's own token: every later write of this execution is fenced by it.
   */
  async claimNextRun(
    lease: string,
    now: Date,
    leaseUntil: Date,
    runbookIds: readonly string[],
  ): Promise<RunRecord | undefined> {
    const rows = await this.driver.query(
      `UPDATE runs
          SET status = 'running', lease_owner = $1, lease_expires_at = $3, updated_at = $2,
              started_at = COALESCE(started_at, $2), attempts = attempts + 1
        WHERE id = (
          SELECT id FROM runs
           WHERE (status = 'queued' OR (status = 'running' AND lease_expires_at < $2))
             AND runbook_id = ANY($4::text[])
           ORDER BY created_at, id
           LIMIT 1
           FOR UPDATE SKIP LOCKED)
       RETURNING *`,
      [lease, iso(now), iso(leaseUntil), [...runbookIds]],
    );
    return rows[0] ? toRun(rows[0]) : undefined;
  }

  /**
   * Claims one run by id when it may be executed now: queued, waiting for approval, or running under an
   * expired lease. Returns `undefined` while any other claim holds it (even one of this process) or when
   * it is final.
   */
  async claimRun(id: string, lease: string, now: Date, leaseUntil: Date): Promise<RunRecord | undefined> {
    const rows = await this.driver.query(
      `UPDATE runs
          SET status = 'running', lease_owner = $2, lease_expires_at = $4, updated_at = $3,
              started_at = COALESCE(started_at, $3), attempts = attempts + 1
        WHERE id = $1
          AND (status IN ('queued', 'waiting_approval')
               OR (status = 'running' AND lease_expires_at < $3))
       RETURNING *`,
      [id, lease, iso(now), iso(leaseUntil)],
    );
    return rows[0] ? toRun(rows[0]) : undefined;
  }

  /** Extends the run's lease and its resource locks. Returns whether the lease is still held and any cancel request. */
  async heartbeat(fence: Fence): Promise<{ held: boolean; cancelRequested: string | null }> {
    const rows = await this.driver.query<{ cancel_requested: string | null }>(
      `WITH r AS (
         UPDATE runs SET lease_expires_at = $4, updated_at = $3
          WHERE id = $1 AND lease_owner = $2 AND status = 'running'
          RETURNING cancel_requested),
       l AS (
         UPDATE locks SET expires_at = $4 WHERE run_id = $1 AND owner = $2 AND EXISTS (SELECT 1 FROM r))
       SELECT cancel_requested FROM r`,
      fenceParams(fence),
    );
    return rows[0]
      ? { held: true, cancelRequested: rows[0].cancel_requested ?? null }
      : { held: false, cancelRequested: null };
  }

  /** Ends a run: final status, outcome or error, lease and locks released, audited. False if the lease was lost. */
  async finishRun(
    fence: Fence,
    status: Extract<RunStatus, 'succeeded' | 'failed' | 'escalated' | 'cancelled'>,
    outcome: Json | null,
    error: ErrorInfo | null,
    audit: AuditEntry,
  ): Promise<boolean> {
    const rows = await this.driver.query<{ n: number }>(FINISH_RUN_SQL, [
      ...fenceParams(fence),
      status,
      json(outcome),
      json(error),
      auditText(audit),
    ]);
    return Number(rows[0]?.n) === 1;
  }

  /** Parks a run until an approval arrives; releases the lease so any process can resume it. */
  async suspendRun(fence: Fence, audit: AuditEntry): Promise<boolean> {
    const rows = await this.driver.query<{ n: number }>(SUSPEND_RUN_SQL, [
      ...fenceParams(fence),
      auditText(audit),
    ]);
    return Number(rows[0]?.n) === 1;
  }

  /**
   * Hands an unfinished run back to the queue (its executor stopped at a safe point on shutdown) so that any
   * process claims it at once instead of waiting for the lease to expire; audited in the same statement.
   * False, and nothing written, when `fence.owner` no longer holds the run.
   */
  async releaseRun(fence: Fence, audit: AuditEntry): Promise<boolean> {
    const rows = await this.driver.query<{ n: number }>(RELEASE_RUN_SQL, [
      ...fenceParams(fence),
      auditText(audit),
    ]);
    return Number(rows[0]?.n) === 1;
  }

  /**
   * Cancels a run. A queued or waiting run ends `cancelled` at once; a running one gets a cancel request
   * that its executor sees at its next heartbeat. Returns what happened, or `final` if it had already ended.
   */
  async cancelRun(
    runId: string,
    actor: string,
    reason: string,
    now: Date,
    error: ErrorInfo,
    audit: AuditEntry,
  ): Promise<'cancelled' | 'requested' | 'final' | 'missing'> {
    return this.driver.transaction(async (tx) => {
      const rows = await tx.query<{ status: RunStatus; lease_expires_at: unknown }>(
        'SELECT status, lease_expires_at FROM runs WHERE id = $1 FOR UPDATE',
        [runId],
      );
      const status = rows[0]?.status;
      if (!status) return 'missing';
      const leaseExpired = status === 'running' && (date(rows[0]?.lease_expires_at) ?? now) < now;
      if (status === 'queued' || status === 'waiting_approval' || leaseExpired) {
        // A running run whose lease expired has no live process: nobody would see a request, so end it now.
        await tx.query(
          `UPDATE runs SET status = 'cancelled', ended_at = $2, updated_at = $2, error = $3::jsonb,
                           lease_owner = NULL, lease_expires_at = NULL WHERE id = $1`,
          [runId, iso(now), json(error)],
        );
        await tx.query(`UPDATE approvals SET status = 'void' WHERE run_id = $1 AND status = 'pending'`, [
          runId,
        ]);
        await tx.query('DELETE FROM locks WHERE run_id = $1', [runId]);
        await this.appendAuditWith(tx, audit);
        return 'cancelled';
      }
      if (status === 'running') {
        await tx.query('UPDATE runs SET cancel_requested = $2, updated_at = $3 WHERE id = $1', [
          runId,
          `${actor}: ${reason}`,
          iso(now),
        ]);
        await this.appendAuditWith(tx, audit);
        return 'requested';
      }
      return 'final';
    });
  }

  // ---- steps ----

  async getSteps(runId: string): Promise<StepRecord[]> {
    const rows = await this.driver.query('SELECT * FROM steps WHERE run_id = $1 ORDER BY seq', [runId]);
    return rows.map(toStep);
  }

  /**
   * Records a step's state and its audit entry in one statement, fenced by the lease. False if the lease was
   * lost. A relaxed commit: a step record lost in a database crash is redone by the resumed run (a check runs
   * again; an act step re-plans and finds its change made).
   */
  async recordStep(fence: Fence, step: StepWrite, audit: AuditEntry): Promise<boolean> {
    const rows = await this.driver.queryRelaxed<{ n: number }>(RECORD_STEP_SQL, [
      ...fenceParams(fence),
      ...stepParams(step),
      auditText(audit),
    ]);
    return Number(rows[0]?.n) === 1;
  }

  /**
   * Before an apply, in one statement: takes the resource's lease lock, spends one unit of its budget
   * (refusing when the window is full), marks the step `applying`, and audits it. The budget is counted
   * under the lock, so two runs cannot both take the last unit; a step is charged once, however many
   * attempts its apply takes.
   */
  async beginAction(
    fence: Fence,
    step: StepWrite,
    lock: { resource: string; until: Date },
    budget: { action: string; max: number; windowStart: Date } | null,
    audit: AuditEntry,
  ): Promise<BeginActionResult> {
    const rows = await this.driver.query<{ fenced: number; locked: number }>(BEGIN_ACTION_SQL, [
      ...fenceParams(fence),
      ...stepParams(step),
      auditText(audit),
      lock.resource,
      iso(lock.until),
      budget?.max ?? null,
      budget?.action ?? '',
      iso(budget?.windowStart ?? fence.now),
    ]);
    const { fenced, locked } = rows[0] ?? { fenced: 0, locked: 0 };
    if (Number(locked) === 1) return { ok: true };
    if (Number(fenced) === 0) return { ok: false, reason: 'lease-lost' };
    const holder = await this.getLock(lock.resource);
    const heldByThisStep = holder?.runId === fence.runId && holder.step === step.name;
    if (holder && holder.expiresAt >= fence.now && !heldByThisStep)
      return { ok: false, reason: 'locked', holder };
    const used = budget ? await this.budgetUsed(lock.resource, budget.action, budget.windowStart) : 0;
    return { ok: false, reason: 'budget', used };
  }

  /**
   * After an apply (and its verification or revert), in one statement: records the step, releases the
   * resource's lock, schedules the revert of an expiring action, and audits it. A relaxed commit: if a
   * database crash loses it, the step is still `applying` (that marker was committed durably), so the
   * resumed run re-plans, finds the change made, verifies it and records it again.
   */
  async finishAction(
    fence: Fence,
    step: StepWrite,
    resource: string,
    expiring: { action: string; revertAt: Date } | null,
    audit: AuditEntry,
  ): Promise<boolean> {
    const rows = await this.driver.queryRelaxed<{ n: number }>(FINISH_ACTION_SQL, [
      ...fenceParams(fence),
      ...stepParams(step),
      auditText(audit),
      resource,
      expiring?.action ?? null,
      iso(expiring?.revertAt),
    ]);
    return Number(rows[0]?.n) === 1;
  }

  // ---- locks and budgets ----

  async getLock(resource: string): Promise<LockRecord | undefined> {
    const rows = await this.driver.query('SELECT * FROM locks WHERE resource = $1', [resource]);
    return rows[0] ? toLock(rows[0]) : undefined;
  }

  async listLocks(): Promise<LockRecord[]> {
    return (await this.driver.query('SELECT * FROM locks ORDER BY resource')).map(toLock);
  }

  /** Takes a resource's lock outside a run's step (the expiry reaper). False when someone else holds it. */
  async tryLock(lock: LockRecord, now: Date): Promise<boolean> {
    const rows = await this.driver.query(
      `INSERT INTO locks (resource, run_id, step, owner, expires_at) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (resource) DO UPDATE
          SET run_id = EXCLUDED.run_id, step = EXCLUDED.step, owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at
        WHERE locks.expires_at < $6 OR locks.owner = EXCLUDED.owner
       RETURNING resource`,
      [lock.resource, lock.runId, lock.step, lock.owner, iso(lock.expiresAt), iso(now)],
    );
    return rows.length === 1;
  }

  async unlock(resource: string, owner: string): Promise<void> {
    await this.driver.query('DELETE FROM locks WHERE resource = $1 AND owner = $2', [resource, owner]);
  }

  /** Applies of `action` on `resource` since `since`. */
  async budgetUsed(resource: string, action: string, since: Date): Promise<number> {
    const rows = await this.driver.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM budget_spend WHERE resource = $1 AND action = $2 AND spent_at > $3',
      [resource, action, iso(since)],
    );
    return Number(rows[0]?.n ?? 0);
  }

  // ---- approvals ----

  /**
   * Asks for an approval of `planHash`: voids earlier pending requests of the step (their plan is stale),
   * records the request and the step's waiting state, audited. Returns the request.
   */
  async requestApproval(
    fence: Fence,
    request: Omit<ApprovalRecord, 'status' | 'decidedBy' | 'decidedAt' | 'reason' | 'breakGlass'>,
    step: StepWrite,
    audit: AuditEntry,
  ): Promise<ApprovalRecord> {
    return this.driver.transaction(async (tx) => {
      const fenced = await tx.query(
        `UPDATE runs SET updated_at = $3, lease_expires_at = $4 WHERE id = $1 AND lease_owner = $2 AND status = 'running' RETURNING id`,
        fenceParams(fence),
      );
      if (fenced.length === 0) throw new LeaseLostSignal();
      await tx.query(
        `UPDATE approvals SET status = 'void' WHERE run_id = $1 AND step = $2 AND status = 'pending'`,
        [request.runId, request.step],
      );
      const rows = await tx.query(
        `INSERT INTO approvals (id, run_id, step, plan_hash, plan, status, requested_by, requested_at, expires_at)
         VALUES ($1, $2, $3, $4, $5::jsonb, 'pending', $6, $7, $8) RETURNING *`,
        [
          request.id,
          request.runId,
          request.step,
          request.planHash,
          json(request.plan),
          request.requestedBy,
          iso(request.requestedAt),
          iso(request.expiresAt),
        ],
      );
      await tx.query(
        `INSERT INTO steps (run_id, name, kind, status, result, error, attempts, started_at, ended_at, seq)
         VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7, $8, $9, $10)
         ON CONFLICT (run_id, name) DO UPDATE SET status = EXCLUDED.status, result = EXCLUDED.result`,
        [request.runId, ...stepParams(step)],
      );
      await this.appendAuditWith(tx, audit);
      return toApproval(rows[0] as Row);
    });
  }

  async listApprovals(runId: string): Promise<ApprovalRecord[]> {
    const rows = await this.driver.query(
      'SELECT * FROM approvals WHERE run_id = $1 ORDER BY requested_at, id',
      [runId],
    );
    return rows.map(toApproval);
  }

  /** The newest approval request of a step, whatever its status. */
  async latestApproval(runId: string, step: string): Promise<ApprovalRecord | undefined> {
    const rows = await this.driver.query(
      'SELECT * FROM approvals WHERE run_id = $1 AND step = $2 ORDER BY requested_at DESC, id DESC LIMIT 1',
      [runId, step],
    );
    return rows[0] ? toApproval(rows[0]) : undefined;
  }

  /**
   * Records a decision on a pending request. Approval requeues the waiting run; rejection cancels it.
   * Returns the updated request, or `undefined` if it was no longer pending.
   */
  async decideApproval(
    approvalId: string,
    decision: {
      status: 'approved' | 'rejected';
      by: string;
      reason: string | null;
      breakGlass: boolean;
      now: Date;
    },
    rejectionError: ErrorInfo | null,
    audit: AuditEntry,
  ): Promise<ApprovalRecord | undefined> {
    return this.driver.transaction(async (tx) => {
      const rows = await tx.query(
        `UPDATE approvals SET status = $2, decided_by = $3, decided_at = $4, reason = $5, break_glass = $6
          WHERE id = $1 AND status = 'pending' RETURNING *`,
        [approvalId, decision.status, decision.by, iso(decision.now), decision.reason, decision.breakGlass],
      );
      const approval = rows[0] ? toApproval(rows[0]) : undefined;
      if (!approval) return undefined;
      if (decision.status === 'approved') {
        await tx.query(
          `UPDATE runs SET status = 'queued', updated_at = $2 WHERE id = $1 AND status = 'waiting_approval'`,
          [approval.runId, iso(decision.now)],
        );
      } else {
        await tx.query(
          `UPDATE runs SET status = 'cancelled', ended_at = $2, updated_at = $2, error = $3::jsonb
            WHERE id = $1 AND status = 'waiting_approval'`,
          [approval.runId, iso(decision.now), json(rejectionError)],
        );
      }
      await this.appendAuditWith(tx, audit);
      return approval;
    });
  }

  // ---- expiring actions ----

  /** Claims applied actions whose expiry has passed, with `FOR UPDATE SKIP LOCKED`. */
  async claimDueExpiring(
    owner: string,
    now: Date,
    claimUntil: Date,
    limit: number,
  ): Promise<ExpiringActionRecord[]> {
    const rows = await this.driver.query(
      `UPDATE expiring_actions SET claimed_by = $1, claim_expires_at = $3
        WHERE (run_id, step) IN (
          SELECT run_id, step FROM expiring_actions
           WHERE status = 'pending' AND revert_at <= $2 AND (claim_expires_at IS NULL OR claim_expires_at < $2)
           ORDER BY revert_at LIMIT $4
           FOR UPDATE SKIP LOCKED)
       RETURNING *`,
      [owner, iso(now), iso(claimUntil), limit],
    );
    return rows.map(toExpiring);
  }

  async listExpiring(): Promise<ExpiringActionRecord[]> {
    return (await this.driver.query('SELECT * FROM expiring_actions ORDER BY revert_at')).map(toExpiring);
  }

  /** Marks an expiring action reverted (or failed to revert), audited. */
  async completeExpiring(
    runId: string,
    step: string,
    owner: string,
    status: 'reverted' | 'failed',
    error: ErrorInfo | null,
    audit: AuditEntry,
  ): Promise<boolean> {
    const rows = await this.driver.query<{ n: number }>(COMPLETE_EXPIRING_SQL, [
      runId,
      step,
      owner,
      status,
      json(error),
      auditText(audit),
    ]);
    return Number(rows[0]?.n) === 1;
  }

  // ---- audit ----

  /** Appends one audit entry outside any other write. */
  async appendAudit(entry: AuditEntry): Promise<void> {
    await this.appendAuditWith(this.driver, entry);
  }

  private async appendAuditWith(q: Queryable, entry: AuditEntry): Promise<void> {
    await q.query(APPEND_AUDIT_SQL, [auditText(entry)]);
  }

  /** Audit rows in order, from `afterSeq` (exclusive), at most `limit`. */
  async readAudit(afterSeq = 0, limit = 10_000): Promise<AuditRow[]> {
    const rows = await this.driver.query<{ seq: number; entry: string; prev_hash: string; hash: string }>(
      'SELECT seq, entry, prev_hash, hash FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2',
      [afterSeq, limit],
    );
    return rows.map(toAuditRow);
  }

  /** The audit rows about one run, in order, from `afterSeq` (exclusive), at most `limit`. */
  async readRunAudit(runId: string, afterSeq = 0, limit = 1_000): Promise<AuditRow[]> {
    const rows = await this.driver.query<{ seq: number; entry: string; prev_hash: string; hash: string }>(
      'SELECT seq, entry, prev_hash, hash FROM audit WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3',
      [runId, afterSeq, limit],
    );
    return rows.map(toAuditRow);
  }

  /** The latest link of the chain, kept apart from the rows so that removing the newest rows is detected. */
  async auditHead(): Promise<{ seq: number; hash: string }> {
    const rows = await this.driver.query<{ seq: number; hash: string }>(
      'SELECT seq, hash FROM audit_head WHERE id = 1',
    );
    const head = rows[0];
    if (!head)
      throw new Error('audit_head row is missing: the store schema is damaged (was it edited by hand?).');
    return { seq: Number(head.seq), hash: head.hash };
  }
}

/** Thrown inside store transactions when the run's lease turned out to be lost. */
export class LeaseLostSignal extends Error {
  constructor() {
    super('lease lost');
  }
}

/** Splits a migration into statements; the migrations use no semicolons inside literals or bodies. */
function splitStatements(sql: string): string[] {
  return sql
    .split(/;\s*$/m)
    .map((s) => s.replace(/^\s*--.*$/gm, '').trim())
    .filter((s) => s.length > 0);
}
