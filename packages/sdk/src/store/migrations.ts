/**
 * The run store's schema, one migration per entry. Applied in order under an advisory lock, each in its
 * own transaction, and recorded in `runbook_migrations`. Never edit a released migration: add a new one.
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** The all-zero hash the audit chain starts from. */
export const GENESIS_HASH = '0'.repeat(64);

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'runs, steps, approvals, locks, budgets, expiring actions, audit',
    sql: `
CREATE TABLE runs (
  id               text PRIMARY KEY,
  runbook_id       text NOT NULL,
  mode             text NOT NULL CHECK (mode IN ('diagnose', 'plan', 'execute')),
  input            jsonb NOT NULL,
  status           text NOT NULL CHECK (status IN ('queued', 'running', 'waiting_approval', 'succeeded', 'failed', 'escalated', 'cancelled')),
  requested_by     text NOT NULL,
  created_at       timestamptz NOT NULL,
  updated_at       timestamptz NOT NULL,
  started_at       timestamptz,
  ended_at         timestamptz,
  outcome          jsonb,
  error            jsonb,
  lease_owner      text,
  lease_expires_at timestamptz,
  cancel_requested text,
  attempts         integer NOT NULL DEFAULT 0
);
CREATE INDEX runs_claimable ON runs (created_at, id) WHERE status IN ('queued', 'running');
CREATE INDEX runs_recent ON runs (created_at DESC);

-- No foreign keys to runs: every step write is fenced by the run's lease in the same statement, which
-- already proves the run exists, and a foreign-key check would add a row lock to every step.
CREATE TABLE steps (
  run_id     text NOT NULL,
  name       text NOT NULL,
  seq        integer NOT NULL,
  kind       text NOT NULL CHECK (kind IN ('check', 'act', 'approve', 'notify', 'sleep')),
  status     text NOT NULL CHECK (status IN ('succeeded', 'failed', 'skipped', 'applying', 'waiting_approval', 'sleeping')),
  result     jsonb,
  error      jsonb,
  attempts   integer NOT NULL DEFAULT 1,
  started_at timestamptz NOT NULL,
  ended_at   timestamptz,
  PRIMARY KEY (run_id, name)
);

CREATE TABLE approvals (
  id           text PRIMARY KEY,
  run_id       text NOT NULL,
  step         text NOT NULL,
  plan_hash    text NOT NULL,
  plan         jsonb NOT NULL,
  status       text NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'void')),
  requested_by text NOT NULL,
  requested_at timestamptz NOT NULL,
  expires_at   timestamptz NOT NULL,
  decided_by   text,
  decided_at   timestamptz,
  reason       text,
  break_glass  boolean NOT NULL DEFAULT false
);
CREATE INDEX approvals_by_run ON approvals (run_id, step);

-- Lease locks: one row per locked resource. A row whose lease expired is free to take.
CREATE TABLE locks (
  resource   text PRIMARY KEY,
  run_id     text NOT NULL,
  step       text NOT NULL,
  owner      text NOT NULL,
  expires_at timestamptz NOT NULL
);

-- One row per apply, for remediation budgets ("at most 3 restarts of X per hour").
CREATE TABLE budget_spend (
  resource text NOT NULL,
  action   text NOT NULL,
  run_id   text NOT NULL,
  step     text NOT NULL,
  spent_at timestamptz NOT NULL
);
CREATE INDEX budget_spend_window ON budget_spend (resource, action, spent_at);
CREATE INDEX budget_spend_by_step ON budget_spend (run_id, step);

-- Applied actions the engine must revert when they expire (an IP block for one hour).
CREATE TABLE expiring_actions (
  run_id           text NOT NULL,
  step             text NOT NULL,
  resource         text NOT NULL,
  action           text NOT NULL,
  revert_at        timestamptz NOT NULL,
  status           text NOT NULL CHECK (status IN ('pending', 'reverted', 'failed')),
  claimed_by       text,
  claim_expires_at timestamptz,
  error            jsonb,
  PRIMARY KEY (run_id, step)
);
CREATE INDEX expiring_due ON expiring_actions (revert_at) WHERE status = 'pending';

-- Append-only, hash-chained audit log. entry is the canonical JSON text that was hashed, kept verbatim.
-- hash = sha256(prev_hash || '|' || seq || '|' || entry); audit_head holds the latest link, so that
-- removing the newest rows is detected too.
CREATE TABLE audit (
  seq       integer PRIMARY KEY,
  entry     text NOT NULL,
  prev_hash text NOT NULL,
  hash      text NOT NULL
);
CREATE TABLE audit_head (
  id        integer PRIMARY KEY CHECK (id = 1),
  seq       integer NOT NULL,
  prev_hash text,
  hash      text NOT NULL
);
INSERT INTO audit_head (id, seq, prev_hash, hash) VALUES (1, 0, NULL, '${GENESIS_HASH}');
`,
  },
  {
    version: 2,
    name: 'run context, idempotency keys and approval mode, audit rows by run, alerts received',
    sql: `
-- Where a run came from (dashboard, panel, alert, time range) and the caller's key that makes a retried
-- request start nothing new. Keys are scoped to the requester: two callers never collide.
ALTER TABLE runs ADD COLUMN context jsonb;
ALTER TABLE runs ADD COLUMN idempotency_key text;
-- 'always': every plan of the run waits for a second person, whatever its risk ("plan and ask").
ALTER TABLE runs ADD COLUMN approval text NOT NULL DEFAULT 'policy' CHECK (approval IN ('policy', 'always'));
CREATE UNIQUE INDEX runs_idempotency ON runs (requested_by, idempotency_key) WHERE idempotency_key IS NOT NULL;

-- The run an audit entry is about, copied from the hashed entry text so that a run's events can be read
-- without scanning the whole log. Derived: verification reads entry, never this column.
ALTER TABLE audit ADD COLUMN run_id text;
UPDATE audit SET run_id = entry::jsonb ->> 'runId';
CREATE INDEX audit_by_run ON audit (run_id, seq) WHERE run_id IS NOT NULL;

-- Alerts received from Alertmanager, one row per alert occurrence (its fingerprint and when it started),
-- per notification group. A redelivery or a repeat notification finds its row; a resolution updates it.
CREATE TABLE alerts (
  group_key   text NOT NULL,
  fingerprint text NOT NULL,
  starts_at   timestamptz NOT NULL,
  alertname   text,
  status      text NOT NULL CHECK (status IN ('firing', 'resolved')),
  labels      jsonb NOT NULL,
  annotations jsonb NOT NULL,
  received_at timestamptz NOT NULL,
  resolved_at timestamptz,
  route       text,
  run_id      text,
  PRIMARY KEY (group_key, fingerprint, starts_at)
);
CREATE INDEX alerts_recent ON alerts (received_at DESC);
CREATE INDEX alerts_by_run ON alerts (run_id) WHERE run_id IS NOT NULL;
`,
  },
];
