import { Alert, Button, ConfirmModal, Drawer, Stack, Text } from '@grafana/ui';
import React, { useState } from 'react';
import { api, type RunContextInput, ServiceError } from '../api/client';
import type { RunbookView, RunDetailView } from '../api/types';
import { PlanTable, RunLink, RunSummary } from './catalog-results';
import { InputForm } from './InputForm';

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
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ServiceError | null>(null);
  const [result, setResult] = useState<RunDetailView | null>(null);
  // For `run`: the input the shown plan was made with, executed as is once confirmed.
  const [planned, setPlanned] = useState<{ input: Record<string, unknown>; detail: RunDetailView } | null>(
    null,
  );
  const [confirming, setConfirming] = useState(false);
  const [executed, setExecuted] = useState<string | null>(null);

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
        else setPlanned({ input, detail });
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
      const started = await api.startRun({
        runbookId: runbook.id,
        input: planned.input,
        mode: 'execute',
        context: CONTEXT,
      });
      setExecuted('runId' in started ? started.runId : started.run.id);
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
        {result && <RunSummary detail={result} />}
        {planned && !executed && (
          <Stack direction="column" gap={2}>
            <Text element="h3" variant="h5">
              The plan
            </Text>
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
              confirmVariant={destructive ? 'destructive' : 'primary'}
              onConfirm={execute}
              onDismiss={() => setConfirming(false)}
            />
          </Stack>
        )}
        {executed && (
          <Alert severity="success" title="Execution queued">
            <Stack direction="column" gap={1}>
              <Text>The run is queued; follow it on its page.</Text>
              <div>
                <RunLink runId={executed} />
              </div>
            </Stack>
          </Alert>
        )}
      </Stack>
    </Drawer>
  );
}
