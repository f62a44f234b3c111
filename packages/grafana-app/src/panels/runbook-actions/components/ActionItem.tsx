import { css } from '@emotion/css';
import type { GrafanaTheme2 } from '@grafana/data';
import { Alert, Button, ConfirmModal, Stack, Text, useStyles2 } from '@grafana/ui';
import React, { useEffect, useRef, useState } from 'react';
import { api, type RunContextInput, ServiceError } from '../../../api/client';
import type { RunbookView, RunDetailView, RunStatus, RunView } from '../../../api/types';
import { RunLink, RunStatusBadge, RunSummary } from '../../../components/catalog-results';
import { newIdempotencyKey } from '../../../components/idempotency';
import { PlanDiff } from '../../../components/PlanDiff';
import { FINAL_STATUSES } from '../../../components/run-format';
import type { ActionConfig } from '../options';
import { type Interpolate, resolveInput } from '../variables';

/** What one action shows below its button. */
type Phase =
  | { kind: 'idle' }
  | { kind: 'busy'; text: string }
  | { kind: 'invalid'; problems: string[] }
  | {
      kind: 'error';
      error: ServiceError;
      /** A failed execute: its plan, to try again with the same idempotency key (never a second run). */
      retry?: ConfirmPhase;
    }
  | { kind: 'result'; detail: RunDetailView }
  | ConfirmPhase
  | { kind: 'not-executable'; detail: RunDetailView; reason: string }
  | { kind: 'dismissed'; detail: RunDetailView }
  | {
      kind: 'executed';
      runId: string;
      status: RunStatus | null;
      replayed: boolean;
      /** Reading the run's status failed: it was started all the same. */
      refreshError?: ServiceError;
    };

/** A plan waiting for the user's confirmation. */
interface ConfirmPhase {
  kind: 'confirm';
  detail: RunDetailView;
  input: Record<string, unknown>;
  context: RunContextInput;
  /** Sent with every attempt to execute this plan: a retry after a lost answer gets the same run back. */
  key: string;
}

const ICON = { diagnose: 'search', plan: 'list-ul', execute: 'play' } as const;
/** How long the panel follows an execution it started before leaving it to the run's page. */
const FOLLOW_MS = 30_000;

const asServiceError = (e: unknown): ServiceError =>
  e instanceof ServiceError
    ? e
    : new ServiceError(0, 'CLIENT_ERROR', e instanceof Error ? e.message : String(e));

/** The plans of a plan run that would change something. */
const changingPlans = (detail: RunDetailView) => detail.plans.filter((p) => p.changes.length > 0);

/** Props of {@link ActionItem}. */
export interface ActionItemProps {
  action: ActionConfig;
  /** The runbook from the service's catalog; undefined while unknown (loading, unreachable, not found). */
  runbook: RunbookView | undefined;
  /** Why the button cannot be used now, if it cannot. */
  disabledReason?: string;
  /** The runbook's newest run: undefined while loading, null when it has none. */
  lastRun: RunView | null | undefined;
  interpolate: Interpolate;
  /** Where runs started here come from (panel, time range); the resolved variables are added. */
  context: RunContextInput;
  /** Called after a run was started, so the panel refreshes the last runs. */
  onRunStarted: () => void;
}

/**
 * One configured action: its button, the runbook's last run, and the outcome of a click. Execute never
 * applies anything directly: it makes a plan-mode run, shows the plan in a confirmation dialog (destructive
 * when a planned change is), and starts the execute-mode run only when the user confirms.
 */
export function ActionItem({
  action,
  runbook,
  disabledReason,
  lastRun,
  interpolate,
  context,
  onRunStarted,
}: ActionItemProps) {
  const styles = useStyles2(getStyles);
  const [phase, setPhase] = useState<Phase>({ kind: 'idle' });
  const mounted = useRef(true);
  useEffect(() => {
    mounted.current = true;
    return () => {
      mounted.current = false;
    };
  }, []);
  const set = (next: Phase) => {
    if (mounted.current) setPhase(next);
  };

  const busy = phase.kind === 'busy';

  const click = async () => {
    // Variables are read now, not when the panel rendered: the user may have changed them since.
    const resolved = resolveInput(action.inputs, runbook?.input, interpolate);
    if (resolved.problems.length > 0) return set({ kind: 'invalid', problems: resolved.problems });
    const runContext: RunContextInput = {
      ...context,
      ...(Object.keys(resolved.variables).length > 0 ? { variables: resolved.variables } : {}),
    };
    try {
      if (action.mode === 'diagnose') {
        set({ kind: 'busy', text: `Diagnosing with ${action.runbookId}…` });
        const detail = await api.diagnose(action.runbookId, resolved.input, runContext);
        set({ kind: 'result', detail });
        return;
      }
      set({ kind: 'busy', text: `Planning ${action.runbookId}…` });
      const detail = (await api.startRun({
        runbookId: action.runbookId,
        input: resolved.input,
        mode: 'plan',
        context: runContext,
      })) as RunDetailView;
      if (action.mode === 'plan') return set({ kind: 'result', detail });
      if (detail.run.status !== 'succeeded') {
        return set({
          kind: 'not-executable',
          detail,
          reason: `The plan run ended ${detail.run.status}: nothing was executed.`,
        });
      }
      if (changingPlans(detail).length === 0) {
        return set({
          kind: 'not-executable',
          detail,
          reason: 'The plan changes nothing: there is nothing to execute.',
        });
      }
      set({
        kind: 'confirm',
        detail,
        input: resolved.input,
        context: runContext,
        key: newIdempotencyKey('grafana-panel'),
      });
    } catch (e) {
      set({ kind: 'error', error: asServiceError(e) });
    } finally {
      onRunStarted();
    }
  };

  const execute = async () => {
    if (phase.kind !== 'confirm') return;
    const confirmed = phase;
    const { input, context: runContext, key } = confirmed;
    set({ kind: 'busy', text: `Executing ${action.runbookId}…` });
    let started: Awaited<ReturnType<typeof api.execute>>;
    try {
      started = await api.execute({
        runbookId: action.runbookId,
        input,
        context: runContext,
        idempotencyKey: key,
      });
    } catch (e) {
      // The service may have queued the run all the same (a proxy timing out): trying again sends the same key.
      set({ kind: 'error', error: asServiceError(e), retry: confirmed });
      return;
    }
    const { runId, replayed } = started;
    set({ kind: 'executed', runId, status: null, replayed });
    onRunStarted();
    await follow(runId, replayed);
  };

  /**
   * Polls the queued execution until it ends or waits for approval (or {@link FOLLOW_MS} passes). A failed
   * read stops following but keeps the executed outcome: the run was started, only its status is unknown.
   */
  const follow = async (runId: string, replayed: boolean) => {
    const deadline = Date.now() + FOLLOW_MS;
    let status: RunStatus | null = null;
    try {
      while (mounted.current && Date.now() < deadline) {
        const detail = await api.getRun(runId);
        status = detail.run.status;
        set({ kind: 'executed', runId, status, replayed });
        if (FINAL_STATUSES.includes(status) || status === 'waiting_approval') break;
        await new Promise((r) => setTimeout(r, 500));
      }
    } catch (e) {
      set({ kind: 'executed', runId, status, replayed, refreshError: asServiceError(e) });
    }
    onRunStarted();
  };

  const confirming = phase.kind === 'confirm' ? phase.detail : null;
  const destructive = confirming?.plans.some((p) => p.destructive) ?? false;
  const disabled = busy || disabledReason !== undefined;

  return (
    <li className={styles.item}>
      <Stack direction="row" gap={1} alignItems="center" wrap="wrap">
        <Button
          icon={ICON[action.mode]}
          variant={action.mode === 'diagnose' ? 'secondary' : 'primary'}
          size="sm"
          onClick={click}
          disabled={disabled}
          tooltip={disabledReason ?? `${action.mode} with runbook ${action.runbookId}`}
        >
          {action.label}
        </Button>
        <LastRun lastRun={lastRun} />
      </Stack>
      <div
        role="status"
        aria-live="polite"
        aria-label={`Outcome of ${action.label}`}
        className={styles.outcome}
      >
        <Outcome phase={phase} onRetry={(retry) => set(retry)} />
      </div>
      <ConfirmModal
        isOpen={confirming !== null}
        title={`Execute ${runbook?.title ?? action.runbookId}?`}
        body={
          confirming && (
            <Stack direction="column" gap={1}>
              <Text>
                This plan was made just now. Executing runs the runbook again and applies it (or waits for an
                approval when the runbook's policy asks for one):
              </Text>
              <PlanDiff plans={changingPlans(confirming)} />
              <div>
                <RunLink runId={confirming.run.id} label="Plan run" />
              </div>
            </Stack>
          )
        }
        confirmText="Execute"
        confirmButtonVariant={destructive ? 'destructive' : 'primary'}
        onConfirm={execute}
        onDismiss={() => {
          if (phase.kind === 'confirm') set({ kind: 'dismissed', detail: phase.detail });
        }}
      />
    </li>
  );
}

function LastRun({ lastRun }: { lastRun: RunView | null | undefined }) {
  if (lastRun === undefined) return null;
  if (lastRun === null) return <Text color="secondary">No run yet</Text>;
  return (
    <Stack direction="row" gap={1} alignItems="center">
      <Text color="secondary">Last {lastRun.mode}:</Text>
      <RunStatusBadge status={lastRun.status} />
      <RunLink runId={lastRun.id} label="Run" />
    </Stack>
  );
}

function Outcome({ phase, onRetry }: { phase: Phase; onRetry: (confirm: ConfirmPhase) => void }) {
  switch (phase.kind) {
    case 'idle':
    case 'confirm':
      return null;
    case 'busy':
      return <Text color="secondary">{phase.text}</Text>;
    case 'invalid':
      return (
        <Alert severity="warning" title="The input could not be built from the dashboard">
          <ul>
            {phase.problems.map((p) => (
              <li key={p}>{p}</li>
            ))}
          </ul>
        </Alert>
      );
    case 'error': {
      const { retry } = phase;
      return (
        <Alert severity="error" title={`${phase.error.code} (${phase.error.status || 'no answer'})`}>
          <Stack direction="column" gap={1}>
            <Text>{phase.error.message}</Text>
            {retry && (
              <>
                <Text>
                  The execution may have started all the same: trying again with this plan never starts a
                  second run.
                </Text>
                <div>
                  <Button size="sm" variant="secondary" icon="sync" onClick={() => onRetry(retry)}>
                    Try again…
                  </Button>
                </div>
              </>
            )}
          </Stack>
        </Alert>
      );
    }
    case 'result':
      return phase.detail.run.mode === 'plan' ? (
        <Stack direction="column" gap={1}>
          <Stack direction="row" gap={1} alignItems="center">
            <RunStatusBadge status={phase.detail.run.status} />
            <Text>Plan only: nothing was applied.</Text>
          </Stack>
          <PlanDiff plans={phase.detail.plans} />
          <div>
            <RunLink runId={phase.detail.run.id} label="Plan run" />
          </div>
        </Stack>
      ) : (
        <RunSummary detail={phase.detail} />
      );
    case 'not-executable':
      return (
        <Stack direction="column" gap={1}>
          <Text>{phase.reason}</Text>
          <RunSummary detail={phase.detail} />
        </Stack>
      );
    case 'dismissed':
      return (
        <Stack direction="row" gap={1} alignItems="center">
          <Text>Not executed: the plan was not confirmed.</Text>
          <RunLink runId={phase.detail.run.id} label="Plan run" />
        </Stack>
      );
    case 'executed':
      return (
        <Stack direction="row" gap={1} alignItems="center" wrap="wrap">
          <Text>{phase.replayed ? 'Already started:' : 'Execution started:'}</Text>
          {phase.status ? <RunStatusBadge status={phase.status} /> : <Text color="secondary">queued</Text>}
          <RunLink runId={phase.runId} />
          {phase.refreshError && (
            <Text color="warning">
              Could not refresh status: {phase.refreshError.code} ({phase.refreshError.status || 'no answer'}){' '}
              {phase.refreshError.message}
            </Text>
          )}
        </Stack>
      );
  }
}

const getStyles = (theme: GrafanaTheme2) => ({
  item: css({
    padding: theme.spacing(1, 0),
    borderBottom: `1px solid ${theme.colors.border.weak}`,
    '&:last-child': { borderBottom: 'none' },
  }),
  outcome: css({ marginTop: theme.spacing(1), '&:empty': { marginTop: 0 } }),
});
