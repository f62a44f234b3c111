// The service's response shapes, from the service's own schemas (a type-only import: nothing of the SDK
// is bundled into the plugin).
import type {
  AuditRowView,
  RunbookView,
  RunDetailView,
  RunEventsPage,
  RunView,
} from '@aiwebtest/runbooks/server';

export type { AuditRowView, RunbookView, RunDetailView, RunEventsPage, RunView };
export type RunMode = RunView['mode'];
export type RunStatus = RunView['status'];
/** `POST /runs`: a run detail for diagnose and plan, `{ runId, replayed }` for execute (queued). */
export type StartedRun = RunDetailView | { runId: string; replayed: boolean };
export interface RunsPage {
  runs: RunView[];
  nextCursor: string | null;
}
export interface AuditPage {
  entries: AuditRowView[];
  nextAfter: number | null;
}
export interface AuditVerification {
  ok: boolean;
  entries: number;
  headHash: string;
  problems: Array<{ seq: number; problem: string; message: string }>;
}
export interface AlertsPage {
  alerts: Array<Record<string, unknown>>;
}
