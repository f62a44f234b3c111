import { css } from '@emotion/css';
import type { GrafanaTheme2 } from '@grafana/data';
import { Alert, Button, ConfirmModal, Drawer, Stack, Text, useStyles2 } from '@grafana/ui';
import React, { useEffect, useRef, useState } from 'react';
import { api, type RunContextInput, ServiceError } from '../api/client';
import type { RunbookView, RunDetailView } from '../api/types';
import { ExecutionQueued, PlanTable, RunLink, RunSummary } from './catalog-results';
import { InputForm } from './InputForm';
import { newIdempotencyKey } from './idempotency';

/** What a catalog action does: look only, show the plan, or plan, confirm and execute. */
export type CatalogAction = 'diagnose' | 'plan' | 'run';

const TITLES: Record<CatalogAction, string> = { diagnose: 'Diagnose', plan: 'Plan', run: 'Run' };
/** Where runs started from the catalog say they came from. */
const CONTEXT: RunContextInput = { source: 'grafana' };

const asServiceError = (e: unknown): ServiceError =>
  e instanceof ServiceError
    ? e
    : new ServiceError(0, 'CLIENT_ERROR', e instanceof Error ? e.message : String(e));

/** Props of {@link CatalogActionDrawer}. */
export interface CatalogActionDrawerProps {
  runbook: RunbookView;
  action: CatalogAction;
  onClose: () => void;
}

/**
 * A runbook action in a drawer: the input form, then the result. `run` first makes a plan-mode run and
 * shows its plan, and executes only after the user confirms that plan.
 */
export function CatalogActionDrawer({ runbook, action, onClose }: CatalogActionDrawerProps) {
  const styles = useStyles2(getStyles);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ServiceError | null>(null);
  const [result, setResult] = useState<RunDetailView | null>(null);
  // For `run`: the input the shown plan was made with, executed as is once confirmed, and the idempotency key
  // of every attempt to execute it (a retry after a lost answer then gets the same run back).
  const [planned, setPlanned] = useState<{
    input: Record<string, unknown>;
    detail: RunDetailView;
    key: string;
  } | null>(null);
  const [confirming, setConfirming] = useState(false);
  const [executed, setExecuted] = useState<{ runId: string; replayed: boolean } | null>(null);
  // The form (and the focused submit button) goes away when a result comes: focus moves to the result's
  // heading, inside the drawer, so the keyboard user stays there and Escape still closes it.
  const heading = useRef<HTMLHeadingElement>(null);
  const shown = result ? 'result' : executed ? 'executed' : planned ? 'planned' : null;
  useEffect(() => {
    if (shown) heading.current?.focus();
  }, [shown]);

  const submit = async (input: Record<string, unknown>) => {
    setBusy(true);
    setError(null);
    try {
      if (action === 'diagnose') {
        setResult(await api.diagnose(runbook.id, input, CONTEXT));
      } else {
        const detail = (await api.startRun({
          runbookId: runbook.id,
          input,
          mode: 'plan',
          context: CONTEXT,
        })) as RunDetailView;
        if (action === 'plan') setResult(detail);
        else setPlanned({ input, detail, key: newIdempotencyKey('grafana-catalog') });
      }
    } catch (e) {
      setError(asServiceError(e));
    } finally {
      setBusy(false);
    }
  };

  const execute = async () => {
    if (!planned) return;
    setError(null);
    try {
      setExecuted(
        await api.execute({
          runbookId: runbook.id,
          input: planned.input,
          context: CONTEXT,
          idempotencyKey: planned.key,
        }),
      );
    } catch (e) {
      setError(asServiceError(e));
    } finally {
      setConfirming(false);
    }
  };

  const destructive = planned?.detail.plans.some((p) => p.destructive) ?? false;
  const showForm = !result && !planned && !executed;

  return (
    <Drawer title={`${TITLES[action]}: ${runbook.title}`} subtitle={runbook.id} onClose={onClose} size="md">
      <Stack direction="column" gap={2}>
        {showForm && (
          <InputForm
            schema={runbook.input}
            submitLabel={action === 'run' ? 'Plan and review' : TITLES[action]}
            onSubmit={submit}
            onCancel={onClose}
            busy={busy}
            error={error}
            idPrefix={`${action}-${runbook.id}`}
          />
        )}
        {busy && <Text color="secondary">Waiting for the runbook service…</Text>}
        {result && (
          <Stack direction="column" gap={1}>
            <h3 ref={heading} tabIndex={-1} className={styles.heading}>
              {action === 'diagnose' ? 'Diagnosis' : 'Plan'}
            </h3>
            <RunSummary detail={result} />
          </Stack>
        )}
        {planned && !executed && (
          <Stack direction="column" gap={2}>
            <h3 ref={heading} tabIndex={-1} className={styles.heading}>
              The plan
            </h3>
            <PlanTable plans={planned.detail.plans} />
            <div>
              <RunLink runId={planned.detail.run.id} label="Plan run" />
            </div>
            {error && (
              <Alert severity="error" title={`${error.code} (${error.status || 'no answer'})`}>
                {error.message}
              </Alert>
            )}
            <Stack gap={1}>
              <Button variant={destructive ? 'destructive' : 'primary'} onClick={() => setConfirming(true)}>
                Execute…
              </Button>
              <Button variant="secondary" fill="outline" onClick={onClose}>
                Cancel
              </Button>
            </Stack>
            <ConfirmModal
              isOpen={confirming}
              title={`Execute ${runbook.title}?`}
              body={
                <Stack direction="column" gap={1}>
                  <Text>The runbook will be run again and apply this plan (or wait for approval):</Text>
                  <PlanTable plans={planned.detail.plans} />
                </Stack>
              }
              confirmText="Execute"
              confirmButtonVariant={destructive ? 'destructive' : 'primary'}
              onConfirm={execute}
              onDismiss={() => setConfirming(false)}
            />
          </Stack>
        )}
        {executed && (
          <Stack direction="column" gap={1}>
            <h3 ref={heading} tabIndex={-1} className={styles.heading}>
              Execution
            </h3>
            <ExecutionQueued runId={executed.runId} replayed={executed.replayed} title="Execution queued" />
          </Stack>
        )}
      </Stack>
    </Drawer>
  );
}

const getStyles = (theme: GrafanaTheme2) => ({
  // A heading that takes focus: the theme's h5, no extra margin, and a visible focus ring for keyboard users.
  heading: css({
    ...theme.typography.h5,
    margin: 0,
    // A box-shadow ring like Grafana's own focus styles: its global `[tabindex='-1']:focus { outline: none
    // !important }` hides an outline on a heading that takes the focus after a result.
    '&:focus-visible': {
      boxShadow: `0 0 0 2px ${theme.colors.background.canvas}, 0 0 0 4px ${theme.colors.primary.main}`,
    },
  }),
});
