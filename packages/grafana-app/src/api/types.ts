// The service's response shapes, from the service's own schemas (a type-only import: nothing of the SDK
// is bundled into the plugin).
import type {
  ApprovalView as ApprovalSchema,
  AuditRowView,
  RunbookView,
  RunDetailView,
  RunEventsPage,
  RunView,
} from '@aiwebtest/runbooks/server';
import type { z } from 'zod';

export type { AuditRowView, RunbookView, RunDetailView, RunEventsPage, RunView };
/** A plan's approval request and its decision. */
export type ApprovalView = z.infer<typeof ApprovalSchema>;
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
  problems: Array<{
    seq: number;
    problem: 'edited' | 'missing' | 'reordered' | 'head-mismatch';
    message: string;
  }>;
}
/** An alert received from Alertmanager, with the run it started. */
export interface AlertView {
  groupKey: string;
  fingerprint: string;
  alertname: string | null;
  status: 'firing' | 'resolved';
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
  receivedAt: string;
  resolvedAt: string | null;
  route: string | null;
  runId: string | null;
}
export interface AlertsPage {
  alerts: AlertView[];
}
